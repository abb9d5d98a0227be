"""Where this installation keeps its configs and tools.

setup.py puts ``configs/``, ``tools/`` and ``model-index.yml`` in
``branched_mtl/.mim`` at install (copies in a regular install, links to the
checkout in an editable one), where OpenMMLab's tools look for them; a
checkout used without installing has them beside the package.
"""
import os.path as osp

PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
MIM_DIR = osp.join(PACKAGE_DIR, '.mim')


def package_file(name: str) -> str:
    """The path of ``configs``, ``tools`` or ``model-index.yml``.

    Args:
        name: A file or folder that setup.py installs in ``.mim``.

    Raises:
        FileNotFoundError: neither installed nor beside the package.
    """
    for path in (osp.join(MIM_DIR, name),
                 osp.join(osp.dirname(PACKAGE_DIR), name)):
        if osp.exists(path):
            return path
    raise FileNotFoundError(
        f'{name} is neither in {MIM_DIR} nor beside the package: reinstall '
        'branched_mtl (pip install [-e] .), which fills .mim')


def tools_dir() -> str:
    """``tools/``, e.g. for ``osp.join(tools_dir(), 'dist_train.sh')``."""
    return package_file('tools')


def configs_dir() -> str:
    """``configs/``, the folder that ``branched_mtl::`` bases name."""
    return package_file('configs')


def use_checkout(root: str) -> None:
    """Make the modules of a checkout (the projects that configs name in
    ``custom_imports``) importable here and in every process started from
    here, as ``tools/dist_train.sh`` does with ``PYTHONPATH``.

    Args:
        root: The checkout's root folder.
    """
    import os
    import sys
    root = osp.abspath(root)
    if root not in sys.path:
        sys.path.insert(0, root)
    paths = [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep)
             if p]
    if root not in paths:
        os.environ['PYTHONPATH'] = os.pathsep.join([root] + paths)
