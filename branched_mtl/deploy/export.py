"""Export a branched network, every task's output, to ONNX and torch.export.

What is exported (:class:`TaskOutputs`) is the whole path from pixels to
predictions that ``model.predict`` takes, as one graph:

* input ``image``: ``(N, 3, H, W)`` float32 RGB pixels in 0-255, the batch
  size free, ``H, W`` fixed at export (the config's test size by default);
* the data preprocessor's channel swap, normalisation and padding to its
  ``pad_size_divisor``;
* the encoder tree and every task head;
* per task, one named output (the task's name), what ``predict`` stores:
  segmentation ``seg_logits`` ``(N, C, H, W)`` (argmax over C gives the
  labels), depth / edges ``(N, 1, H, W)`` (clamped depth, edge
  probability), normals ``(N, 3, H, W)`` unit vectors, offsets
  ``(N, 2, H, W)`` in pixels, a class task ``(N, num_classes)`` scores
  (softmax; sigmoid for multi-label heads).

``.pt2`` files are ``torch.export.export`` programs saved with
``torch.export.save``; ``.onnx`` files come from the dynamo ONNX exporter
(``torch.onnx.export(..., dynamo=True)``, opset 18): the TorchScript one
(``dynamo=False``) cannot export mmseg's pyramid pooling, whose adaptive
average pools (bins 3 and 6 on an 8x16 map) do not divide the feature map.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from branched_mtl.utils.errors import UserError
from branched_mtl.utils.io import mkstemp_shared

__all__ = [
    'TaskOutputs', 'EXPORT_FORMATS', 'export_format', 'export_model',
    'run_exported', 'eager_outputs', 'compare_outputs', 'check_export',
    'example_images', 'export_checkpoint', 'TOLERANCE'
]

EXPORT_FORMATS = {'.onnx': 'onnx', '.pt2': 'pt2'}
# |exported - eager| <= atol + rtol * |eager|, per element: float32 kernels
# of another runtime reorder sums; measured errors are ~1e-6 (docs)
TOLERANCE = dict(atol=1e-4, rtol=1e-4)


def _is_decode_head(head: nn.Module) -> bool:
    from mmseg.models.decode_heads.decode_head import BaseDecodeHead
    return isinstance(head, BaseDecodeHead)


def _class_activation(head: nn.Module, task: str):
    from mmpretrain.models.heads import ClsHead, MultiLabelClsHead
    if isinstance(head, MultiLabelClsHead):
        return torch.sigmoid
    if isinstance(head, ClsHead):
        return lambda score: F.softmax(score, dim=1)
    raise UserError(f'task {task!r}: export does not know the outputs of '
                    f'head {type(head).__name__} (known: mmseg decode heads, '
                    'mmpretrain ClsHead and MultiLabelClsHead families)')


class TaskOutputs(nn.Module):
    """A :class:`BranchedMultiTaskModel` from pixels to every task's
    prediction, as plain tensors (what export traces).

    Args:
        model: The model, in eval mode.

    Returns (forward):
        ``{task: tensor}`` in ``model.tasks`` order (see the module doc): a
        ``.pt2`` program returns this dict, an ONNX graph has one output
        per task, named by the task.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.tasks: List[str] = list(model.tasks)
        pre = model.data_preprocessor
        self.swap = bool(getattr(pre, '_channel_conversion', False))
        self.normalize = bool(getattr(pre, '_enable_normalize', False))
        self.divisor = int(getattr(pre, 'pad_size_divisor', 1) or 1)
        self.pad_value = float(getattr(pre, 'pad_value', 0))
        heads = model.head.task_heads
        # checked here, not at the first trace
        self._activations = {
            t: _class_activation(heads[t], t) for t in self.tasks
            if not _is_decode_head(heads[t])}

    def _dense(self, task: str, logit: Tensor, padded: Tuple[int, int],
               size: Tuple[int, int]) -> Tensor:
        from mmseg.models.utils import resize
        head = self.model.head.task_heads[task]
        # as mmseg's predict_by_feat (to the padded input), then cropped to
        # the image as MultiTaskHead.predict does
        logit = resize(logit, size=padded, mode='bilinear',
                       align_corners=head.align_corners)
        logit = logit[..., :size[0], :size[1]]
        if hasattr(head, 'postprocess'):
            # postprocess takes one sample (C, H, W) and reduces over dim 0
            # (normals' unit length) or acts per element; (C, N, H, W)
            # gives the same result for the whole batch in one call
            logit = head.postprocess(logit.transpose(0, 1)).transpose(0, 1)
        return logit

    def forward(self, image: Tensor) -> Dict[str, Tensor]:
        x = image.float()
        pre = self.model.data_preprocessor
        if self.swap:
            x = x.flip(1)
        if self.normalize:
            x = (x - pre.mean) / pre.std
        h, w = int(x.shape[-2]), int(x.shape[-1])
        ph = -h % self.divisor
        pw = -w % self.divisor
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), value=self.pad_value)
        raw = self.model._forward(x)
        outputs = {}
        for task in self.tasks:
            if task in self._activations:
                outputs[task] = self._activations[task](raw[task])
            else:
                outputs[task] = self._dense(task, raw[task],
                                            (h + ph, w + pw), (h, w))
        return outputs


def export_format(path: str) -> str:
    """``'onnx'`` or ``'pt2'`` from the file's suffix.

    Raises:
        UserError: for any other suffix, naming it.
    """
    suffix = osp.splitext(path)[1].lower()
    if suffix not in EXPORT_FORMATS:
        raise UserError(f'--out {path}: unknown suffix {suffix or "(none)"!r}'
                        f'; give a file ending in '
                        f'{" or ".join(EXPORT_FORMATS)}')
    return EXPORT_FORMATS[suffix]


def example_images(shape: Tuple[int, int], batch: int = 2,
                   seed: int = 0) -> Tensor:
    """Random pixels ``(batch, 3, H, W)`` in 0-255 (float32)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, *shape),
                         generator=gen).float()


def _temp_beside(path: str, suffix: str) -> str:
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # an exported model is for others to read: the mode any new file gets
    fd, tmp = mkstemp_shared(folder, '.' + osp.basename(path), suffix)
    os.close(fd)
    return tmp


def export_model(wrapper: TaskOutputs, example: Tensor, path: str) -> str:
    """Export ``wrapper`` to ``path`` (its suffix picks the format),
    written atomically, with a free batch size.

    Args:
        wrapper: The network.
        example: An input batch; its ``H, W`` are fixed in the export.
        path: ``*.onnx`` or ``*.pt2``.

    Returns:
        The format, ``'onnx'`` or ``'pt2'``.
    """
    fmt = export_format(path)
    batch = torch.export.Dim('batch', min=1, max=4096)
    dynamic = ({0: batch}, )
    tmp = _temp_beside(path, '.' + fmt)
    try:
        with torch.no_grad():
            if fmt == 'pt2':
                program = torch.export.export(wrapper, (example, ),
                                              dynamic_shapes=dynamic)
                torch.export.save(program, tmp)
            else:
                program = torch.onnx.export(
                    wrapper, (example, ), dynamo=True,
                    input_names=['image'], output_names=wrapper.tasks,
                    dynamic_shapes=dynamic, verbose=False)
                # weights inside the file (the rename would orphan an
                # external data file); ONNX's protobuf caps this at 2 GB
                program.save(tmp, external_data=False)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return fmt


def run_exported(path: str, images: Tensor) -> Dict[str, np.ndarray]:
    """Run an exported file on ``images``: ONNX with onnxruntime (CPU),
    ``.pt2`` reloaded with ``torch.export.load``.

    Returns:
        ``{task: output}``, named as in the file.
    """
    fmt = export_format(path)
    if fmt == 'onnx':
        import onnxruntime as ort
        session = ort.InferenceSession(path,
                                       providers=['CPUExecutionProvider'])
        names = [o.name for o in session.get_outputs()]
        outs = session.run(names, {'image': images.numpy()})
        return dict(zip(names, outs))
    program = torch.export.load(path)
    with torch.no_grad():
        outs = program.module()(images)
    return {task: o.numpy() for task, o in outs.items()}


def compare_outputs(exported: Dict[str, np.ndarray],
                    eager: Dict[str, np.ndarray],
                    atol: float = TOLERANCE['atol'],
                    rtol: float = TOLERANCE['rtol']) -> Dict[str, float]:
    """The largest ``|exported - eager|`` per task, checked against
    ``atol + rtol * |eager|``.

    Raises:
        AssertionError: naming the task, its error and the tolerance.
    """
    errors = {}
    for task, ref in eager.items():
        if task not in exported:
            raise AssertionError(f'the export has no output {task!r} '
                                 f'(outputs: {sorted(exported)})')
        out = exported[task]
        if out.shape != ref.shape:
            raise AssertionError(f'task {task!r}: exported output '
                                 f'{out.shape}, eager {ref.shape}')
        diff = np.abs(out.astype(np.float64) - ref)
        errors[task] = float(diff.max()) if diff.size else 0.0
        bad = diff > atol + rtol * np.abs(ref)
        if bad.any():
            raise AssertionError(
                f'task {task!r}: exported output differs from eager PyTorch '
                f'by up to {errors[task]:.3g} (tolerance {atol} + {rtol} * '
                f'|eager|, {int(bad.sum())} elements outside)')
    return errors


def eager_outputs(wrapper: TaskOutputs,
                  images: Tensor) -> Dict[str, np.ndarray]:
    """``{task: output}`` of the eager network."""
    with torch.no_grad():
        return {t: o.numpy() for t, o in wrapper(images).items()}


def check_export(path: str, wrapper: TaskOutputs, images: Tensor,
                 atol: float = TOLERANCE['atol'],
                 rtol: float = TOLERANCE['rtol']) -> Dict[str, float]:
    """Run the exported file and the eager network on ``images`` and
    compare every task's output (:func:`compare_outputs`)."""
    return compare_outputs(run_exported(path, images),
                           eager_outputs(wrapper, images), atol, rtol)


def export_checkpoint(config: str,
                      checkpoint: str,
                      out: str,
                      shape: Optional[Tuple[int, int]] = None,
                      check: bool = True,
                      cfg_options: Optional[dict] = None) -> dict:
    """Export a trained branched network and check the file.

    Args:
        config: The model's config file.
        checkpoint: Its checkpoint (of the config's tree).
        out: ``*.onnx`` or ``*.pt2``.
        shape: ``(H, W)`` of the exported input; None: the config's test
            image size.
        check: Run the file (onnxruntime / ``torch.export.load``) on two
            random images and compare every task with eager PyTorch
            within :data:`TOLERANCE`.
        cfg_options: Overrides of the config.

    Returns:
        ``dict(format, shape, tasks, outputs={task: ['N', C, ...]},
        max_abs_error={task: error}, tolerance)`` (the last two with
        ``check``).

    Raises:
        UserError: an unknown suffix, a missing config or checkpoint, a
            checkpoint of another tree, no image size to export at.
    """
    from branched_mtl.apis.inference import inference_size, init_model
    from branched_mtl.utils.paths import check_output_file
    fmt = export_format(out)  # before any work
    check_output_file(out)
    model = init_model(config, checkpoint, 'cpu', cfg_options)
    shape = tuple(shape) if shape is not None else inference_size(model.cfg)
    if shape is None:
        raise UserError(f'config {config} does not say its test image size '
                        '(no img_size); give --shape H W')
    wrapper = TaskOutputs(model).eval()
    example = example_images(shape, batch=2)
    export_model(wrapper, example, out)
    report = dict(format=fmt, shape=list(shape), tasks=wrapper.tasks,
                  outputs={t: ['N', *o.shape[1:]] for t, o in
                           eager_outputs(wrapper, example).items()})
    if check:
        # other images and batch size than traced: the batch is free
        report['max_abs_error'] = check_export(
            out, wrapper, example_images(shape, batch=3, seed=1))
        report['tolerance'] = dict(TOLERANCE)
    return report
