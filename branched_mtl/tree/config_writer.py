"""Write a tree as a config that inherits a base config.

mmengine executes Python configs, and task names come from an affinity file,
so the written config must be data only: task names are refused unless they
are Python identifiers (no quotes, newlines or spaces to break out of a
string literal), every value is written with ``repr``, and the text is parsed
back and checked to hold nothing but the two literal assignments intended.
"""
import ast
import keyword
import os
import os.path as osp
from typing import List, Optional, Sequence

from .branches import Branches, validate_branches

__all__ = ['check_task_names', 'base_reference', 'render_tree_config',
           'write_tree_config']


def check_task_names(tasks: Sequence[str]) -> List[str]:
    """Refuse task names that are not identifiers (or are Python keywords).

    Returns:
        The names as a list.

    Raises:
        ValueError: listing the refused names.
    """
    tasks = list(tasks)
    bad = [t for t in tasks if not isinstance(t, str) or not t.isidentifier()
           or keyword.iskeyword(t)]
    if bad:
        # repr() shows quotes and newlines escaped, so the message is safe
        # to print too.
        raise ValueError(
            f'task names must be Python identifiers (letters, digits, _; not '
            f'starting with a digit) and not Python keywords, so that a '
            f'generated config cannot carry code; refused: '
            f'{", ".join(repr(t) for t in bad)}')
    return tasks


def base_reference(base_config: str, out_path: str) -> str:
    """How the new config names its base: relative to its folder if possible.

    Raises:
        ValueError: for a path mmengine would read as something else
            (``::`` is a package scope, ``{{ }}`` a substitution) or one with
            control characters.
    """
    base_abs = osp.abspath(base_config)
    try:
        ref = osp.relpath(base_abs, osp.dirname(osp.abspath(out_path)))
    except ValueError:  # another drive on Windows
        ref = base_abs
    ref = ref.replace(os.sep, '/')
    for bad, why in (('::', 'a package scope'), ('{{', 'a substitution'),
                     ('}}', 'a substitution')):
        if bad in ref:
            raise ValueError(
                f'cannot name the base config {ref!r}: mmengine reads '
                f'{bad!r} in a path as {why}')
    if not ref.isprintable():
        raise ValueError(
            f'cannot name the base config {ref!r}: the path has control '
            f'characters')
    return ref


def render_tree_config(base: str,
                       branches: Branches,
                       tasks: Sequence[str],
                       header: Sequence[str] = (),
                       block_names: Optional[Sequence[str]] = None) -> str:
    """The text of a config that inherits ``base`` and sets the tree.

    Args:
        base: The ``_base_`` path, as it will be written.
        branches: The tree (validated against ``tasks``).
        tasks: The task names; must pass :func:`check_task_names`.
        header: Comment lines for the top of the file (printable, no
            newlines).
        block_names: Names for per-block comments (identifiers only).

    Returns:
        The config text, checked to hold only ``_base_ = <str>`` and
        ``model = dict(encoder=dict(branches=<literal>))``.
    """
    tasks = check_task_names(tasks)
    branches = validate_branches(branches, tasks, len(branches))
    if not isinstance(base, str) or not base.isprintable():
        raise ValueError(f'base must be a printable path, got {base!r}')
    lines = []
    for h in header:
        if not isinstance(h, str) or not h.isprintable():
            raise ValueError(f'header lines must be printable, got {h!r}')
        lines.append(f'# {h}'.rstrip())
    lines += [f'_base_ = {base!r}', 'model = dict(',
              '    encoder=dict(branches=[']
    for b, partition in enumerate(branches):
        name = block_names[b] if block_names is not None else None
        note = f'  # {name}' if isinstance(name, str) and \
            name.isidentifier() else ''
        groups = [[str(t) for t in g] for g in partition]
        lines.append(f'        {groups!r},{note}')
    lines.append('    ]))')
    text = '\n'.join(lines) + '\n'
    _check_rendered(text, base, branches)
    return text


def _check_rendered(text: str, base: str, branches: Branches) -> None:
    """Parse the text back: exactly the two literal assignments intended."""
    body = ast.parse(text).body
    ok = len(body) == 2 and all(
        isinstance(n, ast.Assign) and len(n.targets) == 1
        and isinstance(n.targets[0], ast.Name) for n in body)
    if ok:
        ok = (body[0].targets[0].id == '_base_'
              and body[1].targets[0].id == 'model'
              and _literal(body[0].value) == base)
    if ok:
        model = body[1].value
        ok = (_is_dict_call(model, 'encoder')
              and _is_dict_call(model.keywords[0].value, 'branches')
              and _literal(model.keywords[0].value.keywords[0].value)
              == branches)
    if not ok:
        raise RuntimeError('the rendered config is not the data intended; '
                           'refusing to write it')


def _literal(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _is_dict_call(node, key: str) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == 'dict' and not node.args
            and len(node.keywords) == 1 and node.keywords[0].arg == key)


def write_tree_config(out_path: str,
                      base_config: str,
                      branches: Branches,
                      tasks: Sequence[str],
                      header: Sequence[str] = (),
                      block_names: Optional[Sequence[str]] = None) -> str:
    """Write a config inheriting ``base_config`` with the tree ``branches``.

    Args:
        out_path: The new config (``.py``); folders are created.
        base_config: The config to inherit, referenced relative to
            ``out_path``'s folder when possible, else by absolute path.
        branches, tasks, header, block_names: as in
            :func:`render_tree_config`.

    Returns:
        The text written.
    """
    from branched_mtl.utils.io import write_text_atomic
    if not out_path.endswith('.py'):
        raise ValueError(f'the new config must be a .py file, got {out_path}')
    text = render_tree_config(base_reference(base_config, out_path),
                              branches, tasks, header, block_names)
    write_text_atomic(text, out_path)
    return text
