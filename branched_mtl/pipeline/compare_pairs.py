"""Paired differences between the rows of two comparisons of one config.

A comparison finished over several sittings, or a method added later in a
work dir of its own, leaves two ``comparison.json`` files. Where both
were measured against the same single-task models (same config, seeds
and reference records), their Δm per seed are comparable: a row of one
can be paired with a row of the other seed by seed, like the rows of one
file (:func:`branched_mtl.evaluation.paired_stats.paired_difference`).
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from branched_mtl.evaluation.paired_stats import paired_difference
from branched_mtl.utils.errors import UserError

__all__ = ['comparison_rows', 'check_same_references', 'pair_rows',
           'pairs_markdown']

REFERENCE = 'single-task'


def comparison_rows(doc: Mapping[str, Any], budget: Optional[str] = None,
                    name: str = 'the comparison') -> Dict[str, Any]:
    """A comparison's rows by label, at one budget of a budget sweep.

    Args:
        doc: A loaded ``comparison.json``.
        budget: The budget of a sweep (``'20%'``); None for a comparison
            of one budget.
        name: The file, for messages.

    Returns:
        ``{label: row}``.
    """
    if 'by_budget' in doc:
        if budget not in doc['by_budget']:
            raise UserError(f'{name} is a budget sweep: give one of its '
                            f'budgets {list(doc["by_budget"])}, got {budget!r}')
        doc = doc['by_budget'][budget]
    elif budget is not None and str(doc.get('budget')) != str(budget):
        raise UserError(f'{name} is at budget {doc.get("budget")!r}, not '
                        f'{budget!r}')
    return {row['label']: row for row in doc['rows']}


def check_same_references(a: Mapping[str, Any], b: Mapping[str, Any],
                          names: Tuple[str, str]) -> None:
    """Refuse two comparisons whose single-task models differ on a seed
    both have: their Δm would not be measured against the same thing."""
    ra, rb = a.get(REFERENCE), b.get(REFERENCE)
    if ra is None or rb is None:
        raise UserError(f'{names[0] if ra is None else names[1]} has no '
                        f'{REFERENCE!r} row: Δm needs the references')
    common = sorted(set(ra['seeds']) & set(rb['seeds']))
    if not common:
        raise UserError(f'{names[0]} (seeds {ra["seeds"]}) and {names[1]} '
                        f'(seeds {rb["seeds"]}) share no seed')
    for key in sorted(set(ra['values']) & set(rb['values'])):
        if key in ('images_per_s', 'delta_m'):
            continue  # measured, not trained: differs from run to run
        va = dict(zip(ra['seeds'], ra['values'][key]))
        vb = dict(zip(rb['seeds'], rb['values'][key]))
        for seed in common:
            if abs(va[seed] - vb[seed]) > 1e-9 * max(1.0, abs(va[seed])):
                raise UserError(
                    f'{names[0]} and {names[1]} have other single-task '
                    f'models: seed {seed}, {key} {va[seed]} against '
                    f'{vb[seed]}; their Δm are not comparable')


def pair_rows(a: Mapping[str, Any], b: Mapping[str, Any],
              pairs: Sequence[Tuple[str, str]],
              names: Tuple[str, str] = ('A', 'B')) -> List[Dict[str, Any]]:
    """Row of ``a`` minus row of ``b`` in Δm, paired by seed.

    Args:
        a, b: ``{label: row}`` of the two comparisons
            (:func:`comparison_rows`).
        pairs: ``(label in a, label in b)`` to pair.
        names: The two files, for messages.

    Returns:
        One dict per pair: ``a``, ``b`` and :func:`paired_difference`'s
        fields (mean, low, high, n, seeds, per_seed, beyond_interval).
    """
    check_same_references(a, b, names)
    out = []
    for la, lb in pairs:
        for label, rows, name in ((la, a, names[0]), (lb, b, names[1])):
            if label not in rows:
                raise UserError(f'{name} has no row {label!r}; its rows: '
                                f'{sorted(rows)}')
        va = dict(zip(a[la]['seeds'], a[la]['values']['delta_m']))
        vb = dict(zip(b[lb]['seeds'], b[lb]['values']['delta_m']))
        out.append(dict(a=la, b=lb, **paired_difference(va, vb)))
    return out


def pairs_markdown(results: Sequence[Mapping[str, Any]]) -> str:
    """A table: per pair, the mean paired difference in Δm, its 95 %
    interval and the seeds."""
    def num(v: Optional[float]) -> str:
        return '—' if v is None else f'{v:+.2f}'
    lines = ['| A | B | A − B, Δm points [95 % CI] | seeds |',
             '| --- | --- | --- | --- |']
    for r in results:
        mark = {1: ' (A better)', -1: ' (B better)'}.get(
            r['beyond_interval'], '')
        lines.append(f'| {r["a"]} | {r["b"]} | {num(r["mean"])} '
                     f'[{num(r.get("low"))}, {num(r.get("high"))}]{mark} | '
                     f'{", ".join(str(s) for s in r["seeds"])} |')
    return '\n'.join(lines)
