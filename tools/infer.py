"""Every task's prediction on your images, as arrays and pictures.

    python tools/infer.py CONFIG CHECKPOINT INPUTS [INPUTS ...] --out-dir DIR
        [--img-size H W | --native-size] [--batch-size N] [--device cpu]
        [--cfg-options k=v ...]

INPUTS are image files, folders (their images) or text files listing one
image per line. Per image, ``DIR/<name>/`` gets ``<task>.npy`` and
``<task>.png`` for every task, ``tasks.png`` (every task side by side) and
``predictions.json`` (docs/inference.md). Images are resized to the size
the config's test images have unless ``--img-size`` or ``--native-size``
says otherwise. A bad input (an image that cannot be read, a missing file,
a checkpoint of another tree) ends in one ``infer: error:`` line naming
it, and exit status 2.
"""
import argparse
import sys
import warnings
from typing import List, Optional

# mmcv-lite warns on import that it lacks an op nothing here uses: filtered
# before branched_mtl imports mmcv (the other known notices: main block)
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

import branched_mtl  # noqa: F401,E402  (compat before mmseg)
from mmengine.config import DictAction  # noqa: E402

from branched_mtl.apis.inference import (  # noqa: E402
    BranchedMTLInferencer, list_images)
from branched_mtl.utils import UserError, check_work_dir  # noqa: E402
from branched_mtl.utils.console import quiet_known_warnings  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Predict every task of a branched model on images')
    parser.add_argument('config', help='the model\'s config file')
    parser.add_argument('checkpoint', help='its checkpoint (.pth)')
    parser.add_argument('inputs', nargs='+',
                        help='images, folders of images or .txt lists')
    parser.add_argument('--out-dir', required=True,
                        help='folder for the arrays, pictures and figures')
    size = parser.add_mutually_exclusive_group()
    size.add_argument('--img-size', type=int, nargs=2, metavar=('H', 'W'),
                      help='resize every image to H x W (default: the '
                      'config\'s test image size)')
    size.add_argument('--native-size', action='store_true',
                      help='feed each image at its own size')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--device', default='cpu',
                        help='cpu, cuda, cuda:1 ... (default cpu)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value pairs')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    try:
        if args.batch_size < 1:
            raise UserError(f'--batch-size must be >= 1, got '
                            f'{args.batch_size}')
        list_images(args.inputs)  # a missing input before any work
        check_work_dir(args.out_dir, '--out-dir')
        model = args.config
        if args.cfg_options:
            from branched_mtl.apis.runner import load_config
            model = load_config(args.config, cfg_options=args.cfg_options)
        img_size = (None if args.native_size else
                    tuple(args.img_size) if args.img_size else 'auto')
        inferencer = BranchedMTLInferencer(model, args.checkpoint,
                                           device=args.device,
                                           img_size=img_size)
        result = inferencer(args.inputs, batch_size=args.batch_size,
                            out_dir=args.out_dir)
    except (UserError, FileNotFoundError) as e:
        print(f'infer: error: {e}', file=sys.stderr)
        sys.exit(2)
    count = len(result['predictions'])
    print(f'infer: {count} image(s), tasks {", ".join(inferencer.tasks)}: '
          f'predictions in {args.out_dir}')
    return result


if __name__ == '__main__':
    quiet_known_warnings()
    main()
