"""Helpers shared by the data sets."""
from typing import Optional, Sequence, Tuple


def select_tasks(dataset: str, tasks: Optional[Sequence[str]],
                 known: Sequence[str]) -> Tuple[str, ...]:
    """The tasks a data set is asked for, checked against those it has.

    Args:
        dataset: The data set's name, for the error message.
        tasks: The requested tasks, or None for all of them.
        known: The tasks the data set provides.

    Returns:
        The requested tasks as a tuple.

    Raises:
        ValueError: naming the unknown tasks (or an empty request).
    """
    tasks = tuple(known if tasks is None else tasks)
    unknown = [t for t in tasks if t not in known]
    if unknown or not tasks:
        raise ValueError(f'{dataset}: unknown task(s) {unknown} '
                         f'(tasks are {list(known)})')
    return tasks
