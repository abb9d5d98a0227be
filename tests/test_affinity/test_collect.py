import json
import os
import os.path as osp
import runpy
import subprocess
import sys

import numpy as np
import pytest

from branched_mtl.affinity import (collect_rsa, collect_tournament,
                                   find_probe_runs, load_affinity,
                                   rsa_affinity)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'compute_affinity.py')
SPLITS = ['s1', 's2', 's3']
INDICES = [3, 14, 15, 92]


def write_probe(run_dir, tasks, losses=None, recombination=None,
                features=None, splits=SPLITS, indices=INDICES):
    probe = osp.join(run_dir, 'affinity_probe')
    os.makedirs(probe)
    meta = {'tasks': tasks, 'blocks': splits, 'sample_indices': indices,
            'recombination': recombination}
    with open(osp.join(probe, 'meta.json'), 'w') as f:
        json.dump(meta, f)
    if losses is None:
        losses = np.zeros((len(tasks), len(indices)))
    np.save(osp.join(probe, 'losses.npy'),
            np.asarray(losses, dtype=np.float32).reshape(len(tasks), -1))
    for (task, split), arr in (features or {}).items():
        os.makedirs(osp.join(probe, 'features', task), exist_ok=True)
        np.save(osp.join(probe, 'features', task, f'{split}.npy'),
                arr.astype(np.float16))
    return str(run_dir)


# ----------------------------------------------------------------- RSA

RSA_TASKS = ['depth', 'semseg', 'normals']  # order of the sorted run dirs


def rsa_features(seed):
    rng = np.random.default_rng(seed)
    return {(task, split): rng.standard_normal((4, 2, 3)).astype(np.float16)
            for task in RSA_TASKS for split in SPLITS}


def make_rsa_runs(root, features):
    return [
        write_probe(root / f'run{i}_{task}', [task], features={
            (task, s): features[task, s] for s in SPLITS})
        for i, task in enumerate(RSA_TASKS)
    ]


def test_collect_rsa(tmp_path):
    features = rsa_features(0)
    runs = make_rsa_runs(tmp_path, features)
    # Passing the runs in another order must not change the task order.
    tasks, layers, affinity, meta = collect_rsa(runs[::-1])
    assert tasks == RSA_TASKS and layers == SPLITS
    assert affinity.shape == (3, 3, 3)
    for l, split in enumerate(SPLITS):
        expected = rsa_affinity([features[t, split] for t in RSA_TASKS])
        np.testing.assert_allclose(affinity[l], expected, atol=1e-12)
    assert meta['num_samples'] == 4 and meta['sample_indices'] == INDICES
    assert meta['runs']['semseg'] == osp.abspath(runs[1])

    order = ['normals', 'depth', 'semseg']
    perm = [RSA_TASKS.index(t) for t in order]
    _, _, reordered, _ = collect_rsa(runs, tasks=order)
    np.testing.assert_allclose(reordered, affinity[:, perm][:, :, perm])


def test_collect_rsa_errors(tmp_path):
    features = rsa_features(1)
    runs = make_rsa_runs(tmp_path, features)
    with pytest.raises(ValueError, match=r"no single-task run for task\(s\) "
                       r"\['edges'\]"):
        collect_rsa(runs, tasks=RSA_TASKS + ['edges'])
    with pytest.raises(ValueError, match=r"task\(s\) \['normals'\] that are "
                       'not in the requested'):
        collect_rsa(runs, tasks=['depth', 'semseg'])
    with pytest.raises(ValueError, match='given twice'):
        collect_rsa(runs + [runs[0]])

    other = write_probe(tmp_path / 'other_depth', ['depth'], features={
        ('depth', s): features['depth', s] for s in SPLITS})
    with pytest.raises(ValueError, match="two runs for task 'depth': .*"
                       'run0_depth and .*other_depth'):
        collect_rsa(runs + [other])

    shifted = write_probe(tmp_path / 'shifted', ['edges'],
                          indices=[3, 14, 15, 93])
    with pytest.raises(ValueError, match='disagree on sample_indices: '
                       '.*run0_depth and .*shifted'):
        collect_rsa(runs + [shifted])
    renamed = write_probe(tmp_path / 'renamed', ['edges'],
                          splits=['s1', 's2', 'head'])
    with pytest.raises(ValueError, match='disagree on split names: '
                       '.*run0_depth .*renamed'):
        collect_rsa(runs + [renamed])

    rec = write_probe(tmp_path / 'rec', ['edges'],
                      recombination={'target': 'edges', 'source': 'depth',
                                     'split': 2})
    with pytest.raises(ValueError, match='rec: RSA uses single-task runs'):
        collect_rsa(runs + [rec])

    os.remove(osp.join(runs[1], 'affinity_probe', 'features', 'semseg',
                       's2.npy'))
    with pytest.raises(ValueError, match=r'missing feature file\(s\): '
                       r'.*semseg.s2\.npy'):
        collect_rsa(runs)


def test_collect_rsa_checks_feature_sample_count(tmp_path):
    features = rsa_features(2)
    features['semseg', 's3'] = features['semseg', 's3'][:3]
    runs = make_rsa_runs(tmp_path, features)
    with pytest.raises(ValueError, match=r's3\.npy: shape \(3, 2, 3\), '
                       'expected 4 samples'):
        collect_rsa(runs)


def test_collect_rsa_names_split_of_bad_features(tmp_path):
    features = rsa_features(3)
    features['normals', 's2'][1] = 0.5
    runs = make_rsa_runs(tmp_path, features)
    with pytest.raises(ValueError, match=r"split 's2': .*task 'normals'\): "
                       r'sample\(s\) \[1\] are constant'):
        collect_rsa(runs)


# ---------------------------------------------------------- tournament

def rec(target, source, split):
    return {'target': target, 'source': source, 'split': split}


def make_tournament_runs(root):
    """Tasks a, b; splits 1 and 3 of 3 swept; K = 4.

    split 1: target a: st_a (1,2,3,4) vs a<-b (1,3,2,5): one tie, wins 2:1
             -> P[a] = (2/3, 1/3); target b: b<-a (0,...) always below st_b
             (2,...) -> P[b] = (0.999, 0.001).
    split 3: target a: the explicit a<-a run (9,...) loses every sample to
             a<-b (5,...) -> P[a] = (0.001, 0.999) (st_a would win all);
             target b: b<-a ties st_b everywhere -> P[b] = (0.5, 0.5).
    """
    return {
        'st_a': write_probe(root / 'st_a', ['a'], [1, 2, 3, 4]),
        'st_b': write_probe(root / 'st_b', ['b'], [2, 2, 2, 2]),
        'a_b_1': write_probe(root / 'rec' / 'a_from_b_l1', ['a'],
                             [1, 3, 2, 5], rec('a', 'b', 1)),
        'b_a_1': write_probe(root / 'rec' / 'b_from_a_l1', ['b'],
                             [0, 0, 0, 0], rec('b', 'a', 1)),
        'a_a_3': write_probe(root / 'rec' / 'a_from_a_l3', ['a'],
                             [9, 9, 9, 9], rec('a', 'a', 3)),
        'a_b_3': write_probe(root / 'rec' / 'a_from_b_l3', ['a'],
                             [5, 5, 5, 5], rec('a', 'b', 3)),
        'b_a_3': write_probe(root / 'rec' / 'b_from_a_l3', ['b'],
                             [2, 2, 2, 2], rec('b', 'a', 3)),
    }


P_EXPECTED = np.array([[[2 / 3, 1 / 3], [0.999, 0.001]],
                       [[0.001, 0.999], [0.5, 0.5]]])
A_EXPECTED = (P_EXPECTED + P_EXPECTED.transpose(0, 2, 1)) / 2


def test_collect_tournament(tmp_path):
    runs = make_tournament_runs(tmp_path)
    tasks, layers, affinity, meta = collect_tournament(runs.values())
    assert tasks == ['a', 'b']
    assert layers == ['s1', 's3']
    np.testing.assert_allclose(affinity, A_EXPECTED, atol=1e-12)
    np.testing.assert_allclose(meta['performance'], P_EXPECTED, atol=1e-12)
    assert meta['split_indices'] == [1, 3]
    used = {(r['target'], r['source'], r['split']): r for r in meta['runs']}
    assert len(used) == 8
    assert used['a', 'a', 3]['run_dir'] == osp.abspath(runs['a_a_3'])
    assert used['a', 'a', 1]['run_dir'] == osp.abspath(runs['st_a'])
    assert used['a', 'a', 1]['single_task_stand_in']

    _, _, swapped, _ = collect_tournament(runs.values(), tasks=['b', 'a'])
    np.testing.assert_allclose(swapped, A_EXPECTED[:, ::-1, ::-1])


def test_collect_tournament_missing_runs(tmp_path):
    runs = make_tournament_runs(tmp_path)
    del runs['b_a_3'], runs['st_a']
    with pytest.raises(ValueError) as info:
        collect_tournament(runs.values())
    msg = str(info.value)
    assert 'missing runs for 2 ' in msg
    assert "(target=a, source=a, split=1 's1')" in msg
    assert "(target=b, source=a, split=3 's3')" in msg


def test_collect_tournament_errors(tmp_path):
    runs = make_tournament_runs(tmp_path)
    dup = write_probe(tmp_path / 'again' / 'a_from_b_l1', ['a'],
                      [1, 1, 1, 1], rec('a', 'b', 1))
    with pytest.raises(ValueError, match='duplicate runs for target=a, '
                       'source=b, split=1: .*rec.a_from_b_l1 and '
                       '.*again.a_from_b_l1'):
        collect_tournament(list(runs.values()) + [dup])

    shifted = write_probe(tmp_path / 'shifted', ['c'], indices=[1, 2, 3, 4])
    with pytest.raises(ValueError, match='disagree on sample_indices: '
                       '.*st_a and .*shifted'):
        collect_tournament(list(runs.values()) + [shifted])

    with pytest.raises(ValueError, match='no recombined runs'):
        collect_tournament([runs['st_a'], runs['st_b']])

    bad = write_probe(tmp_path / 'bad_split', ['a'],
                      recombination=rec('a', 'b', 4))
    with pytest.raises(ValueError, match=r'split must be an int in 1\.\.3'):
        collect_tournament([bad])

    nan_dir = write_probe(tmp_path / 'nan' / 'b_from_a_l3', ['b'],
                          [2, np.nan, 2, 2], rec('b', 'a', 3))
    others = [v for k, v in runs.items() if k != 'b_a_3']
    with pytest.raises(ValueError, match=r"losses\.npy: non-finite loss nan "
                       "for task 'b' at sample 1"):
        collect_tournament(others + [nan_dir])


def test_find_probe_runs(tmp_path):
    runs = make_tournament_runs(tmp_path)
    (tmp_path / 'rec' / 'not_a_run').mkdir()
    assert find_probe_runs(tmp_path) == sorted(runs.values())
    with pytest.raises(ValueError, match='no affinity_probe/meta.json'):
        find_probe_runs(tmp_path / 'rec' / 'not_a_run')


# ----------------------------------------------------------------- CLI

def test_cli_tournament_end_to_end(tmp_path):
    make_tournament_runs(tmp_path / 'sweep')
    out = tmp_path / 'out' / 'affinity.json'
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO] + [p for p in [env.get('PYTHONPATH')] if p])
    proc = subprocess.run(
        [sys.executable, TOOL, '--method', 'tournament', '--sweep-dir',
         str(tmp_path / 'sweep'), '--tasks', 'b,a', '--out', str(out)],
        capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = load_affinity(out)
    assert doc['method'] == 'tournament'
    assert doc['tasks'] == ['b', 'a'] and doc['blocks'] == ['s1', 's3']
    np.testing.assert_allclose(doc['affinity'], A_EXPECTED[:, ::-1, ::-1],
                               atol=1e-12)
    assert doc['meta']['num_samples'] == 4
    assert doc['meta']['sample_indices'] == INDICES
    assert 'date' in doc['meta']


def run_tool_in_process(argv):
    main = runpy.run_path(TOOL, run_name='compute_affinity')['main']
    main(argv)


def test_cli_rsa_and_errors(tmp_path):
    features = rsa_features(4)
    sweep = tmp_path / 'sweep'
    runs = make_rsa_runs(sweep, features)
    # A recombined run in the sweep dir is skipped by --method rsa.
    write_probe(sweep / 'rec', ['depth'],
                recombination=rec('depth', 'semseg', 1))
    out = tmp_path / 'rsa.json'
    run_tool_in_process(['--method', 'rsa', '--sweep-dir', str(sweep),
                         '--out', str(out)])
    doc = load_affinity(out)
    assert doc['tasks'] == RSA_TASKS and doc['blocks'] == SPLITS
    expected = collect_rsa(runs)[2]
    np.testing.assert_allclose(doc['affinity'], expected)

    with pytest.raises(SystemExit, match='compute_affinity: error: .*RSA '
                       'uses single-task runs'):
        run_tool_in_process(['--method', 'rsa', *runs, str(sweep / 'rec'),
                             '--out', str(tmp_path / 'never.json')])
    assert not (tmp_path / 'never.json').exists()


def test_probe_meta_written_before_the_blocks_key_still_reads(tmp_path):
    """``meta.json`` named the block list ``splits`` before ``blocks``."""
    from branched_mtl.affinity.collect import read_probe
    run = write_probe(str(tmp_path / 'r'), ['a'])
    meta_path = osp.join(run, 'affinity_probe', 'meta.json')
    meta = json.load(open(meta_path))
    meta['splits'] = meta.pop('blocks')
    json.dump(meta, open(meta_path, 'w'))
    assert read_probe(run).splits == tuple(SPLITS)
