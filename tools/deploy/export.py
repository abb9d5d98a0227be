"""Export a branched network, every task's output, to ONNX or torch.export.

    python tools/deploy/export.py CONFIG CHECKPOINT --out FILE.onnx|FILE.pt2
        [--shape H W] [--no-check] [--cfg-options k=v ...]

The suffix picks the format: ``.onnx`` (dynamo exporter, opset 18, one
output per task named by the task) or ``.pt2`` (``torch.export``; the
program returns ``{task: tensor}``). The input is ``image``: float32 RGB
pixels 0-255, ``(N, 3, H, W)``, any N. Unless ``--no-check``, the file is
run (onnxruntime / ``torch.export.load``) and every task's output compared
with eager PyTorch; the largest differences are printed. A bad input (an
unknown suffix, a missing file, a checkpoint of another tree) ends in one
``export: error:`` line naming it, and exit status 2.
"""
import argparse
import sys
import warnings
from typing import List, Optional

warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

import branched_mtl  # noqa: F401,E402  (compat before mmseg)
from mmengine.config import DictAction  # noqa: E402

from branched_mtl.deploy import export_checkpoint  # noqa: E402
from branched_mtl.utils import UserError  # noqa: E402
from branched_mtl.utils.console import quiet_known_warnings  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a branched network to ONNX or torch.export')
    parser.add_argument('config', help='the model\'s config file')
    parser.add_argument('checkpoint', help='its checkpoint (.pth)')
    parser.add_argument('--out', required=True,
                        help='the file to write: *.onnx or *.pt2')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input height and width (default: the '
                        'config\'s test image size)')
    parser.add_argument('--no-check', action='store_true',
                        help='do not compare the file with eager PyTorch')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value pairs')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    try:
        report = export_checkpoint(args.config, args.checkpoint, args.out,
                                   args.shape, not args.no_check,
                                   args.cfg_options)
    except (UserError, FileNotFoundError) as e:
        print(f'export: error: {e}', file=sys.stderr)
        sys.exit(2)
    h, w = report['shape']
    print(f'export: {args.out} ({report["format"]}), input image '
          f'(N, 3, {h}, {w}), outputs ' + ', '.join(
              f'{t} ({", ".join(map(str, s))})'
              for t, s in report['outputs'].items()))
    if 'max_abs_error' in report:
        tol = report['tolerance']
        print('export: checked against eager PyTorch, largest |difference| '
              + ', '.join(f'{t} {e:.2g}'
                          for t, e in report['max_abs_error'].items())
              + f' (tolerance {tol["atol"]:g} + {tol["rtol"]:g} * |eager|)')
    return report


if __name__ == '__main__':
    quiet_known_warnings()
    main()
