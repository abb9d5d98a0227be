"""Whether each affinity of a comparison separates its task pairs beyond
the seeds' spread (:func:`branched_mtl.affinity.repeatability.separation`):
an affinity that does not orders the task pairs by noise, and the tree it
gives is a random one."""
import os.path as osp
from typing import Any, Callable, Dict, List, Mapping, Sequence

from branched_mtl.affinity import load_affinity
from branched_mtl.affinity.repeatability import separation


def separation_scores(methods: Sequence[str], seeds: Sequence[int],
                      path_of: Callable[[int, str], str]
                      ) -> Dict[str, Dict[str, Any]]:
    """Per affinity method with a file in at least two seeds (and three
    tasks), its separation per split over those seeds.

    Args:
        methods: The methods to look at.
        seeds: The comparison's seeds.
        path_of: ``(seed, method) -> affinity.json`` path.

    Returns:
        ``{method: dict(seeds=[...], blocks=[...], **separation)}``.
    """
    out: Dict[str, Dict[str, Any]] = {}
    for method in methods:
        docs, used = [], []
        for seed in seeds:
            path = path_of(seed, method)
            if osp.isfile(path):
                docs.append(load_affinity(path))
                used.append(seed)
        if len(docs) < 2 or len(docs[0]['tasks']) < 3:
            continue
        order = docs[0]['tasks']
        arrays = []
        for doc in docs:
            idx = [doc['tasks'].index(t) for t in order]
            arrays.append(doc['affinity'][:, idx][:, :, idx])
        out[method] = dict(seeds=used, blocks=list(docs[0]['blocks']),
                           **separation(arrays, docs[0]['blocks']))
    return out


def separation_markdown(scores: Mapping[str, Mapping[str, Any]],
                        labels: Mapping[str, str]) -> str:
    """A table: per method and split, the range of the task pairs' mean
    affinity against the mean std over seeds (a split that does not
    separate is marked)."""
    if not scores:
        return ''
    # the deepest blocks of all: a tournament under a budget measures
    # the deep splits only (its row says so at the others)
    layers = max((s['blocks'] for s in scores.values()), key=len)
    lines: List[str] = [
        '| affinity | ' + ' | '.join(layers) + ' |',
        '|' + ' --- |' * (len(layers) + 1)]
    for method, s in scores.items():
        at = dict(zip(s['blocks'], s['per_split']))
        cells = [(f'{at[b]["range"]:.3g} / {at[b]["spread"]:.3g}'
                  + ('' if at[b]['separates'] else ' **flat**'))
                 if b in at else 'not swept' for b in layers]
        lines.append(f'| {labels.get(method, method)} | '
                     + ' | '.join(cells) + ' |')
    flat = [f'{labels.get(m, m)} at '
            + ', '.join(s['blocks'][i] for i in s['flat'])
            for m, s in scores.items() if s['flat']]
    factor = next(iter(scores.values()))['factor']
    text = ('Per split: the range of the task pairs\' mean affinity over '
            'seeds / the mean std of one pair over seeds; **flat** where '
            f'the range is not {factor:g}x the std (the pairs are ordered '
            'by noise there).\n\n' + '\n'.join(lines) + '\n')
    if flat:
        text += ('\n**The affinity does not separate the task pairs beyond '
                 'the seeds\' spread**: ' + '; '.join(flat) + '.\n')
    return text
