"""Size budgets as users write them: parameters (25M, 300K, 1.5M, 60%) or
FLOPs per image (3.5GFLOPs, 800MFLOPs)."""
import math
import re
from typing import Any, Optional, Sequence

from branched_mtl.utils.errors import UserError, short_repr

__all__ = ['Budget', 'parse_budget', 'parse_size_budget', 'is_flops_budget',
           'check_nonzero_budget', 'shallowest_branch']

_SUFFIX = {'': 1, 'K': 10**3, 'M': 10**6, 'G': 10**9, 'T': 10**12}
_NUMBER = r'(\d+(?:\.\d*)?|\.\d+)'
# 3.5GFLOPs, 800 MFLOPs, 1.2e9 is not accepted: a unit letter or none
_FLOPS = re.compile(_NUMBER + r'\s*([kKmMgGtT]?)\s*flops?', re.IGNORECASE)
_FLOPS_WORD = re.compile(r'flop', re.IGNORECASE)


class Budget(int):
    """A size budget: an int of parameters, or of FLOPs per image.

    An int, so that a parameter budget works wherever a parameter count
    did; ``unit`` says which (``'params'`` or ``'flops'``). ``str()`` gives
    text that :func:`parse_size_budget` reads back (``25000000``,
    ``3500000000FLOPs``): how tools pass a budget on.
    """
    unit: str

    def __new__(cls, value: int, unit: str = 'params') -> 'Budget':
        if unit not in ('params', 'flops'):
            raise ValueError(f"budget unit must be 'params' or 'flops', got "
                             f'{unit!r}')
        obj = super().__new__(cls, value)
        obj.unit = unit
        return obj

    @property
    def value(self) -> int:
        return int(self)

    @property
    def what(self) -> str:
        return 'FLOPs' if self.unit == 'flops' else 'parameters'

    def __str__(self) -> str:
        return f'{int(self)}FLOPs' if self.unit == 'flops' else str(
            int(self))

    def __repr__(self) -> str:
        return f'Budget({int(self)}, {self.unit!r})'

    def __format__(self, spec: str) -> str:
        return str(self) if not spec else format(int(self), spec)

    def __reduce__(self):
        return (Budget, (int(self), self.unit))


def _clean(text: Any) -> str:
    return str(text).replace('_', '').replace(',', '').strip()


def is_flops_budget(text: Any) -> bool:
    """Whether a budget text names FLOPs (``3.5GFLOPs``), not parameters."""
    return isinstance(text, Budget) and text.unit == 'flops' or (
        not isinstance(text, Budget)
        and bool(_FLOPS_WORD.search(_clean(text))))


def parse_size_budget(text: Any,
                      separate_params: Optional[int] = None) -> Budget:
    """A parameter or FLOPs budget.

    Args:
        text: ``'25M'``, ``'300K'``, ``1200000``, ``'60%'`` (parameters; a
            percentage of the single-task models together), or FLOPs per
            image: ``'3.5GFLOPs'``, ``'800MFLOPs'``, ``'5e6'`` is refused
            (write ``5MFLOPs``).
        separate_params: Parameters of the single-task models together;
            needed for a percentage.

    Returns:
        The :class:`Budget`; a percentage is rounded to the nearest
        parameter.

    Raises:
        ValueError: naming the text that is not a budget.
    """
    if isinstance(text, Budget):
        return text
    s = _clean(text)
    if _FLOPS_WORD.search(s):
        m = _FLOPS.fullmatch(s)
        if not m:
            raise ValueError(
                f'budget {text!r}: a FLOPs budget is a number with an '
                'optional K, M, G or T before FLOPs, like 3.5GFLOPs or '
                '800MFLOPs (FLOPs per image; percentages are of '
                'parameters only)')
        return Budget(int(round(float(m.group(1)) *
                                _SUFFIX[m.group(2).upper()])), 'flops')
    return Budget(parse_budget(text, separate_params), 'params')


def parse_budget(text: Any, separate_params: Optional[int] = None) -> int:
    """A parameter budget as a number of parameters.

    Args:
        text: ``'25M'``, ``'300K'``, ``'1.5M'``, ``1200000``, or ``'60%'``
            (of the single-task models together).
        separate_params: Parameters of the single-task models together;
            needed for a percentage.

    Returns:
        The budget in parameters; a percentage is rounded to the nearest
        one.

    Raises:
        ValueError: naming the text that is not a budget (a FLOPs budget
            included: read those with :func:`parse_size_budget`).
    """
    s = _clean(text)
    if s.endswith('%'):
        if separate_params is None:
            raise ValueError(
                f'budget {text!r}: a percentage needs the size of the '
                'single-task models together (tools/branch.py knows it); '
                'give a parameter count here')
        try:
            pct = float(s[:-1])
        except ValueError:
            pct = float('nan')
        if not (math.isfinite(pct) and pct > 0):
            raise ValueError(f'budget {text!r}: the percentage must be > 0')
        # Multiplying first keeps whole percentages exact (0.29 * 100 is
        # 28.999...), and a budget is the nearest whole parameter count.
        return int(round(pct * separate_params / 100))
    if _FLOPS_WORD.search(s):
        raise ValueError(f'budget {text!r} is a FLOPs budget, not a '
                         'parameter count; read it with parse_size_budget')
    m = re.fullmatch(_NUMBER + r'\s*([kKmMgG]?)', s)
    if not m:
        raise ValueError(
            f'budget must be a parameter count like 25M, 300K or 1200000 '
            f'(or 60% in tools/branch.py), or FLOPs per image like '
            f'3.5GFLOPs, got {text!r}')
    return int(round(float(m.group(1)) * _SUFFIX[m.group(2).upper()]))


def check_nonzero_budget(budget: int, text: Any, option: str = '--budget',
                         unit: str = 'params') -> int:
    """Refuse a budget that rounds to nothing instead of letting it silently
    become 0 (``'0.4'`` parameters is 0; the user likely meant 40 %).

    Args:
        budget: The budget as parsed (:func:`parse_budget`).
        text: What the user wrote, for the message.
        option: The option (or setting) it came from, for the message.
        unit: ``'params'`` or ``'flops'``.

    Returns:
        ``budget``, when it is at least 1.

    Raises:
        UserError: (a ``ValueError``) naming the option and the text, with
            a guess when the text is a fraction between 0 and 1.
    """
    if budget >= 1:
        return budget
    hint = ''
    try:
        value = float(str(text))
        if 0 < value < 1:
            hint = f' (did you mean {value:.0%}?)'
    except ValueError:
        pass
    what, count = (('FLOPs', 'FLOPs') if unit == 'flops' else
                   ('parameters', 'parameter'))
    raise UserError(
        f'{option} {short_repr(text)} is {budget} {what}, no network fits; '
        f'give a {count} count (25M, 300K, 1200000) or a percentage of the '
        f'single-task models together (60%){hint}')


def shallowest_branch(block_sizes: Sequence[int], head_size: int,
                      budget: int) -> Optional[int]:
    """The shallowest block at which a tree within ``budget`` can branch.

    A tree that has two groups at block b has at least two groups at every
    deeper block (groups only split with depth), so the cheapest such tree
    shares blocks ``0 .. b-1`` and holds two copies of blocks ``b .. L-1``.
    Its size only grows as b gets shallower; every tree within the budget
    is therefore one group (all tasks) at every block above the returned
    one, whatever the affinity says there. The search reads no affinity
    there, which is what lets a measurement skip those splits.

    Args:
        block_sizes: Parameters (or FLOPs per image) of one copy of each
            block, shallow to deep.
        head_size: Parameters (or FLOPs) of all task heads together.
        budget: The most parameters (or FLOPs) of the whole model.

    Returns:
        The block index (0 = the shallowest block), or None when only the
        all-shared tree fits.
    """
    sizes = [int(s) for s in block_sizes]
    shared = sum(sizes) + int(head_size)
    for b in range(len(sizes)):
        if shared + sum(sizes[b:]) <= budget:
            return b
    return None
