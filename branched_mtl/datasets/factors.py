"""Factors of a composed image and tasks defined as functions of them.

A :class:`PlantedDigits` image is drawn from factors sampled per image (the
digits' identity, rotation, scale, position and colour; the background's
stripes and colour). A task is a small spec in the config that names an
``op`` of the vocabulary below and the factor(s) it reads, so a new task set
is a config change::

    task_specs = dict(
        digit=dict(op='class', factor='digit'),            # 10 classes
        parity=dict(op='parity', factor='digit'),          # odd / even
        large=dict(op='bin', factor='digit', edges=[5]),   # digit >= 5
        rotation=dict(op='bin', factor='rotation', edges=[-30, 0, 30]),
        order=dict(op='order', factors=['digit_0', 'digit_1']))  # d0 > d1

Vocabulary (``op``):

* ``class``: the value of a categorical factor (its number of values).
* ``bin``: a factor binned by increasing ``edges`` inside its range; the
  label is the number of edges at or below the value (``len(edges) + 1``).
* ``parity``: a categorical factor modulo 2.
* ``order``: 1 when the first of two factors is larger than the second.
* ``sum``: the sum of categorical factors (all sums possible).
"""
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

TASK_OPS = ('class', 'bin', 'parity', 'order', 'sum')
# factors of each digit (suffixed _<k> when an image holds several digits)
DIGIT_FACTORS = ('digit', 'rotation', 'scale', 'x', 'y', 'fg_colour')
SCENE_FACTORS = ('stripe_orientation', 'stripe_period', 'bg_colour')


class Factor(NamedTuple):
    """One factor of the composed images.

    Attributes:
        name: e.g. ``digit``, ``rotation`` or ``digit_1``.
        num_values: Number of values of a categorical factor (its values are
            ``0 .. num_values - 1``); None for a continuous one.
        low: Smallest value.
        high: Largest value (continuous: drawn uniformly in [low, high]).
    """
    name: str
    num_values: Optional[int]
    low: float
    high: float

    @property
    def categorical(self) -> bool:
        return self.num_values is not None


class TaskSpec(NamedTuple):
    """A task checked against the factors (see :func:`build_task`).

    Attributes:
        name: The task's name.
        op: One of :data:`TASK_OPS`.
        factors: The factors it reads.
        edges: The bin edges (``op='bin'``), else empty.
        num_classes: Number of classes of its label.
    """
    name: str
    op: str
    factors: Tuple[str, ...]
    edges: Tuple[float, ...]
    num_classes: int


def digit_factor_names(num_digits: int) -> List[List[str]]:
    """Per digit, the names of its factors (``digit`` or ``digit_0`` ...)."""
    if num_digits == 1:
        return [list(DIGIT_FACTORS)]
    return [[f'{f}_{k}' for f in DIGIT_FACTORS] for k in range(num_digits)]


def make_factors(num_digits: int, rotation: Sequence[float],
                 scale: Sequence[float], shift: float, num_colours: int,
                 num_orientations: int, num_periods: int
                 ) -> Dict[str, Factor]:
    """The factors of an image, by name.

    Args:
        num_digits: Digits per image.
        rotation: ``(low, high)`` of a digit's rotation in degrees
            (counter-clockwise).
        scale: ``(low, high)`` of a digit's side (of MNIST's 28 px box) as a
            fraction of its cell's height.
        shift: Largest offset in pixels of a digit's centre from its cell's
            centre, along x and y.
        num_colours: Colours of the palette (digit and background).
        num_orientations: Stripe orientations (evenly spaced over 180
            degrees).
        num_periods: Stripe periods.

    Returns:
        ``{name: Factor}``, the digits' factors first.
    """
    per_digit = dict(
        digit=(10, 0, 9), rotation=(None, *rotation), scale=(None, *scale),
        x=(None, -shift, shift), y=(None, -shift, shift),
        fg_colour=(num_colours, 0, num_colours - 1))
    factors = {}
    for names in digit_factor_names(num_digits):
        for base, name in zip(DIGIT_FACTORS, names):
            n, low, high = per_digit[base]
            factors[name] = Factor(name, n, float(low), float(high))
    scene = dict(stripe_orientation=num_orientations,
                 stripe_period=num_periods, bg_colour=num_colours)
    for name, n in scene.items():
        factors[name] = Factor(name, n, 0.0, float(n - 1))
    return factors


def _factor(task: str, name, factors: Mapping[str, Factor]) -> Factor:
    if name not in factors:
        raise ValueError(f'task {task!r}: unknown factor {name!r} (factors '
                         f'are {list(factors)})')
    return factors[name]


def build_task(name: str, spec: Mapping,
               factors: Mapping[str, Factor]) -> TaskSpec:
    """Check one task spec of the config against the factors.

    Args:
        name: The task's name.
        spec: ``dict(op=..., factor=...)`` (``factors=[...]`` for ``order``
            and ``sum``; ``edges=[...]`` for ``bin``).
        factors: The factors (:func:`make_factors`).

    Returns:
        The checked :class:`TaskSpec`.

    Raises:
        ValueError: one line naming the task and the value at fault.
    """
    if not isinstance(spec, Mapping):
        raise ValueError(f'task {name!r}: spec must be a dict with an op, '
                         f'got {spec!r}')
    op = spec.get('op')
    if op not in TASK_OPS:
        raise ValueError(f'task {name!r}: unknown op {op!r} (ops are '
                         f'{list(TASK_OPS)})')
    allowed = {'op', 'edges'} | ({'factors'} if op in ('order', 'sum')
                                 else {'factor'})
    extra = sorted(set(spec) - allowed)
    if extra or (op != 'bin' and 'edges' in spec):
        raise ValueError(f'task {name!r}: op {op!r} takes no '
                         f'{extra or ["edges"]} (spec {dict(spec)})')
    if op in ('order', 'sum'):
        names = spec.get('factors')
        if not isinstance(names, (list, tuple)) or len(names) < 2 or (
                op == 'order' and len(names) != 2):
            want = 'two factors' if op == 'order' else 'two or more factors'
            raise ValueError(f'task {name!r}: op {op!r} needs `factors`, '
                             f'{want}, got {names!r}')
    else:
        if 'factor' not in spec:
            raise ValueError(f'task {name!r}: op {op!r} needs `factor`')
        names = [spec['factor']]
    used = [_factor(name, f, factors) for f in names]
    categorical = op in ('class', 'parity', 'order', 'sum')
    bad = [f.name for f in used if categorical and not f.categorical]
    if bad:
        raise ValueError(f'task {name!r}: op {op!r} needs categorical '
                         f'factors, {bad} are continuous (bin them)')
    edges: Tuple[float, ...] = ()
    if op == 'class':
        num_classes = used[0].num_values
    elif op in ('parity', 'order'):
        num_classes = 2
    elif op == 'sum':
        num_classes = sum(f.num_values - 1 for f in used) + 1
    else:
        edges = _check_edges(name, spec.get('edges'), used[0])
        num_classes = len(edges) + 1
    return TaskSpec(name, op, tuple(f.name for f in used), edges,
                    int(num_classes))


def _check_edges(task: str, edges, factor: Factor) -> Tuple[float, ...]:
    if not isinstance(edges, (list, tuple)) or not edges:
        raise ValueError(f'task {task!r}: op "bin" needs `edges`, a '
                         f'non-empty list, got {edges!r}')
    edges = tuple(float(e) for e in edges)
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f'task {task!r}: bin edges {list(edges)} must '
                         'increase')
    # an edge outside the range leaves a bin that no image falls in (a
    # categorical factor's top value may be a bin of its own)
    top = factor.high if factor.categorical else np.nextafter(
        factor.high, -np.inf)
    out = [e for e in edges if not factor.low < e <= top]
    if out:
        raise ValueError(
            f'task {task!r}: bin edges {out} out of range of factor '
            f'{factor.name!r} ({factor.low:g}, {factor.high:g})')
    return edges


def build_tasks(task_specs: Mapping[str, Mapping],
                factors: Mapping[str, Factor]) -> Dict[str, TaskSpec]:
    """Check every task spec of a config (see :func:`build_task`)."""
    if not isinstance(task_specs, Mapping) or not task_specs:
        raise ValueError(f'task_specs must be a non-empty dict of task '
                         f'name -> spec, got {task_specs!r}')
    return {name: build_task(name, spec, factors)
            for name, spec in task_specs.items()}


def task_labels(task: TaskSpec,
                values: Mapping[str, np.ndarray]) -> np.ndarray:
    """The labels of ``task`` for sampled factor values.

    Args:
        task: A checked task.
        values: ``{factor: array of values}``, one entry per image.

    Returns:
        An int64 array of labels in ``[0, task.num_classes)``.
    """
    cols = [np.asarray(values[f]) for f in task.factors]
    if task.op == 'class':
        labels = cols[0]
    elif task.op == 'parity':
        labels = cols[0] % 2
    elif task.op == 'order':
        labels = cols[0] > cols[1]
    elif task.op == 'sum':
        labels = np.sum(cols, axis=0)
    else:  # bin: a value on an edge belongs to the upper bin
        labels = np.searchsorted(np.asarray(task.edges), cols[0],
                                 side='right')
    return np.asarray(labels).astype(np.int64)


def check_groups(groups: Optional[Mapping[str, Sequence[str]]],
                 tasks: Sequence[str]) -> Optional[Dict[str, List[str]]]:
    """Check the planted groups: a partition of the tasks into named groups.

    Args:
        groups: ``{group: [task, ...]}`` or None (no planted groups).
        tasks: All tasks of the config.

    Returns:
        The groups as lists, or None.

    Raises:
        ValueError: naming a task that is unknown, missing or in two groups.
    """
    if groups is None:
        return None
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError(f'groups must be a dict of group -> tasks, got '
                         f'{groups!r}')
    seen: Dict[str, str] = {}
    for group, members in groups.items():
        if isinstance(members, str) or not members:
            raise ValueError(f'group {group!r}: needs a list of tasks, got '
                             f'{members!r}')
        for task in members:
            if task not in tasks:
                raise ValueError(f'group {group!r}: unknown task {task!r} '
                                 f'(tasks are {list(tasks)})')
            if task in seen:
                raise ValueError(f'task {task!r} is in groups '
                                 f'{seen[task]!r} and {group!r}')
            seen[task] = group
    missing = [t for t in tasks if t not in seen]
    if missing:
        raise ValueError(f'tasks {missing} are in no group; planted groups '
                         'must cover every task')
    return {g: list(m) for g, m in groups.items()}
