"""Run a script with branched_mtl imported first.

    python -m branched_mtl SCRIPT [ARGS ...]

For other repositories' tools (mmsegmentation's or mmpretrain's
tools/train.py, tools/test.py ...) on a config whose ``_base_`` names
``branched_mtl::...``: mmengine reads ``_base_`` before it imports the
config's ``custom_imports``, and resolves ``branched_mtl::`` only once
branched_mtl is imported. The script runs as ``python SCRIPT ARGS`` would.
"""
import os.path as osp
import runpy
import sys


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ('-h', '--help'):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) > 1 else 2)
    script = sys.argv[1]
    if not osp.isfile(script):
        sys.exit(f'python -m branched_mtl: no such script: {script}')
    sys.argv = sys.argv[1:]
    # as `python SCRIPT`: the script's folder first on the path, not the cwd
    sys.path[0] = osp.dirname(osp.abspath(script))
    runpy.run_path(script, run_name='__main__')


if __name__ == '__main__':
    main()
