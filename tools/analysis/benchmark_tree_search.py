"""Time the tree search and measure how far the beam is from the optimum.

    python tools/analysis/benchmark_tree_search.py [--quick] [--n-init]

1. CelebA scale: 40 tasks, 13 blocks (thin VGG-16, one block per conv
   layer), beam search with top_n = 3, over several alphas.
2. Exact search: 6 tasks x 5 blocks, and the sizes that set the 'auto'
   threshold (7 to 9 tasks x 13 blocks, with and without a budget).
3. Beam vs exact on 50 uniform random symmetric affinities (5 tasks, 4
   blocks) and 50 with latent task families (6 tasks, 5 blocks).
4. (--n-init) k-means restarts in the beam's spectral clustering: 10
   (sklearn's default) against 3 (ours).

The affinities are synthetic: tasks drawn from latent families, related
less the deeper the block, plus noise. Prints Markdown tables.
"""
import argparse
import platform
import time

import numpy as np

from branched_mtl.tree import count_tree_params, search_tree
from branched_mtl.tree import search as search_mod

# thin VGG-16, one block per conv layer; the pooling after a stage belongs to
# its last conv: p_l = stages from layer l's on.
VGG_POOLS = [5, 5, 4, 4, 3, 3, 3, 2, 2, 2, 1, 1, 1]


def family_affinity(n: int, num_blocks: int, seed: int,
                    families: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fam = rng.integers(0, families, n)
    out = np.empty((num_blocks, n, n))
    for l in range(num_blocks):
        depth = l / max(num_blocks - 1, 1)
        same, other = 0.9 - 0.3 * depth, 0.7 - 0.6 * depth
        a = np.where(fam[:, None] == fam[None, :], same, other)
        noise = rng.normal(0, 0.05, (n, n))
        out[l] = np.clip(a + (noise + noise.T) / 2, 0, 1)
        np.fill_diagonal(out[l], 1.0)
    return out


def random_affinity(n: int, num_blocks: int, rng) -> np.ndarray:
    a = rng.random((num_blocks, n, n))
    a = (a + a.transpose(0, 2, 1)) / 2
    for l in range(num_blocks):
        np.fill_diagonal(a[l], 1.0)
    return a


def timed(fn, *args, **kwargs):
    """Result, wall seconds and CPU seconds (the machine may be shared)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t, time.process_time() - c


def celeba(alphas, seeds) -> None:
    n, num_blocks = 40, len(VGG_POOLS)
    tasks = [f'attr{i}' for i in range(n)]
    print(f'\n### Beam search, N = {n} tasks, L = {num_blocks} blocks, '
          f'top_n = 3\n')
    print('| affinity seed | alpha | wall s | CPU s | cost | '
          'groups per block |')
    print('| --- | --- | --- | --- | --- | --- |')
    # warm the imports (sklearn, scipy) outside the timings
    search_tree(family_affinity(6, 2, 0), tasks[:6], [1, 0], 0.1,
                method='beam')
    for seed in seeds:
        aff = family_affinity(n, num_blocks, seed)
        for alpha in alphas:
            (b, c), s, cpu = timed(search_tree, aff, tasks, VGG_POOLS, alpha,
                                   method='beam', top_n=3)
            groups = '-'.join(str(len(p)) for p in b)
            print(f'| {seed} | {alpha:g} | {s:.2f} | {cpu:.2f} | {c:.4f} | '
                  f'{groups} |', flush=True)


def exact(quick: bool) -> None:
    print('\n### Exact search\n')
    print('| N | L | budget | wall s | CPU s |')
    print('| --- | --- | --- | --- | --- |')
    sizes = [(6, 5), (7, 13), (8, 13)] + ([] if quick else [(9, 13)])
    for n, num_blocks in sizes:
        rng = np.random.default_rng(n)
        aff = random_affinity(n, num_blocks, rng)
        tasks = [f't{i}' for i in range(n)]
        pools = sorted(rng.integers(0, 6, num_blocks).tolist(), reverse=True)
        bp = [1000 * (l + 1) for l in range(num_blocks)]
        _, s, cpu = timed(search_tree, aff, tasks, pools, 0.01,
                          method='exact')
        print(f'| {n} | {num_blocks} | none | {s:.3f} | {cpu:.3f} |',
              flush=True)
        budget = count_tree_params([[tasks]] * num_blocks, bp) * n // 2
        _, s, cpu = timed(search_tree, aff, tasks, pools, 0.01,
                          budget=budget, block_params=bp, method='exact')
        print(f'| {n} | {num_blocks} | half of fully separate | {s:.3f} | '
              f'{cpu:.3f} |', flush=True)


def gap(cases: int) -> None:
    print(f'\n### Beam vs exact, {cases} affinities each, alpha log-uniform '
          f'in [0.001, 1]\n')
    print('| affinities | N | L | top_n | optimal in | mean gap | max gap |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for kind, n, num_blocks in (('uniform random', 5, 4),
                                ('latent families', 6, 5)):
        tasks = [f't{i}' for i in range(n)]
        rng = np.random.default_rng(2024)
        rows = {1: [], 3: []}
        for k in range(cases):
            if kind == 'uniform random':
                aff = random_affinity(n, num_blocks, rng)
            else:
                aff = family_affinity(n, num_blocks, 1000 + k, families=3)
            pools = sorted(rng.integers(0, 4, num_blocks).tolist(),
                           reverse=True)
            alpha = float(10 ** rng.uniform(-3, 0))
            _, best = search_tree(aff, tasks, pools, alpha, method='exact')
            for top_n in rows:
                _, c = search_tree(aff, tasks, pools, alpha, method='beam',
                                   top_n=top_n)
                assert c >= best - 1e-9
                rows[top_n].append((c - best) / best if best > 0 else 0.0)
        for top_n, g in rows.items():
            g = np.array(g)
            print(f'| {kind} | {n} | {num_blocks} | {top_n} | '
                  f'{np.mean(g < 1e-9) * 100:.0f}% | {g.mean() * 100:.2f}% | '
                  f'{g.max() * 100:.2f}% |', flush=True)


def n_init(alphas, seeds) -> None:
    n, num_blocks = 40, len(VGG_POOLS)
    tasks = [f'attr{i}' for i in range(n)]
    print('\n### k-means restarts in the beam (N = 40, L = 13, top_n = 3)\n')
    print('| seed | alpha | n_init | wall s | CPU s | cost |')
    print('| --- | --- | --- | --- | --- | --- |')
    old = search_mod._KMEANS_N_INIT
    try:
        for seed in seeds:
            aff = family_affinity(n, num_blocks, seed)
            for alpha in alphas:
                for k in (10, 3):
                    search_mod._KMEANS_N_INIT = k
                    (_, c), s, cpu = timed(search_tree, aff, tasks,
                                           VGG_POOLS, alpha, method='beam',
                                           top_n=3)
                    print(f'| {seed} | {alpha:g} | {k} | {s:.2f} | '
                          f'{cpu:.2f} | {c:.4f} |', flush=True)
    finally:
        search_mod._KMEANS_N_INIT = old


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='one affinity seed, fewer alphas, no N = 9')
    parser.add_argument('--n-init', action='store_true',
                        help='also compare 10 and 3 k-means restarts')
    args = parser.parse_args()
    print(f'machine: {platform.processor() or platform.machine()}, '
          f'python {platform.python_version()}')
    alphas = [0.0005, 0.002, 0.01] if args.quick else [
        0.0, 0.0005, 0.002, 0.01, 0.05]
    seeds = [0] if args.quick else [0, 1]
    celeba(alphas, seeds)
    exact(args.quick)
    gap(50)
    if args.n_init:
        n_init([0.0005, 0.002, 0.01], seeds)


if __name__ == '__main__':
    main()
