"""Parameter budgets as users write them: 25M, 300K, 1.5M, 60%."""
import math
import re
from typing import Any, Optional

_SUFFIX = {'': 1, 'K': 10**3, 'M': 10**6, 'G': 10**9}


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
        ValueError: naming the text that is not a budget.
    """
    s = str(text).replace('_', '').replace(',', '').strip()
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
    m = re.fullmatch(r'(\d+(?:\.\d*)?|\.\d+)\s*([kKmMgG]?)', s)
    if not m:
        raise ValueError(
            f'budget must be a parameter count like 25M, 300K or 1200000 '
            f'(or 60% in tools/branch.py), got {text!r}')
    return int(round(float(m.group(1)) * _SUFFIX[m.group(2).upper()]))
