"""Predictions of a branched model on users' images (mmengine's inferencer).

:class:`BranchedMTLInferencer` is mmengine's ``BaseInferencer`` with the
parts a multi-task model changes: the pipeline reads an image (a file or an
RGB array), resizes it to the size the model was trained at and packs it
with mmpretrain's ``PackInputs``; the model's ``predict`` fills one
sub-sample per task; every task's prediction is written as an array and as
a picture, and one figure per image shows every task side by side.

Output layout (``out_dir``), one folder per image::

    <out_dir>/<image name>/
        <task>.npy        the prediction (see visualization.predictions)
        <task>.png        its picture
        tasks.png         the image and every task side by side
        predictions.json  per task: kind, array file, shape, and for class
                          tasks the label and its score
"""
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.config import Config
from mmengine.infer import BaseInferencer
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement
from torch import nn

from branched_mtl.registry import DATASETS, INFERENCERS
from branched_mtl.utils.errors import UserError
from branched_mtl.utils.io import open_atomic
from branched_mtl.visualization.predictions import (figure_to_array,
                                                    plot_tasks,
                                                    save_task_picture,
                                                    task_array)
from .model import init_model

__all__ = ['BranchedMTLInferencer', 'inference_size', 'list_images']

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp',
                  '.ppm', '.pgm')
InputType = Union[str, np.ndarray]


def inference_size(cfg: Config) -> Optional[Tuple[int, int]]:
    """``(H, W)`` the config's test images have, or None when it does not
    say (the image is then fed at its own size).

    The test data set's ``img_size`` (SyntheticScenes), else its class's
    fixed ``IMAGE_SHAPE`` (MultiDigits).
    """
    dataset = (cfg.get('test_dataloader') or {}).get('dataset')
    while isinstance(dataset, dict):
        if dataset.get('img_size') is not None:
            return tuple(int(v) for v in dataset['img_size'])
        name = str(dataset.get('type', '')).rpartition('.')[2]
        shape = getattr(DATASETS.get(name), 'IMAGE_SHAPE', None) \
            if name else None
        if shape is not None:
            return tuple(int(v) for v in shape)
        dataset = dataset.get('dataset')
    return None


def _list_file(path: str) -> List[str]:
    folder = osp.dirname(osp.abspath(path))
    with open(path, encoding='utf-8') as f:
        lines = [ln.strip() for ln in f if ln.strip()
                 and not ln.lstrip().startswith('#')]
    return [ln if osp.isabs(ln) else osp.join(folder, ln) for ln in lines]


def list_images(inputs: Union[InputType, Sequence[InputType]]
                ) -> List[InputType]:
    """Images from image files, folders (their image files, sorted), text
    files listing one image per line (relative to the list), or arrays.

    Raises:
        UserError: naming a path that does not exist or a folder without
            images.
    """
    if isinstance(inputs, (str, np.ndarray)):
        inputs = [inputs]
    images: List[InputType] = []
    for item in inputs:
        if isinstance(item, np.ndarray):
            images.append(item)
            continue
        item = os.fspath(item)
        if osp.isdir(item):
            found = sorted(
                osp.join(item, n) for n in os.listdir(item)
                if n.lower().endswith(IMAGE_SUFFIXES)
                and osp.isfile(osp.join(item, n)))
            if not found:
                raise UserError(f'folder {item} holds no image '
                                f'({", ".join(IMAGE_SUFFIXES)})')
            images.extend(found)
        elif not osp.exists(item):
            raise UserError(f'input {item} does not exist')
        elif item.lower().endswith('.txt'):
            listed = _list_file(item)
            missing = [p for p in listed if not osp.isfile(p)]
            if missing:
                raise UserError(f'image {missing[0]} listed in {item} does '
                                'not exist')
            images.extend(listed)
        else:
            images.append(item)
    if not images:
        raise UserError('no input images given')
    return images


def _unique_names(inputs: Sequence[InputType], start: int = 0) -> List[str]:
    """An output folder name per input: the file's stem, numbered when two
    files share one; arrays are ``array_<n>``."""
    names, seen = [], set()
    for i, item in enumerate(inputs, start=start):
        base = (osp.splitext(osp.basename(item))[0]
                if isinstance(item, str) else f'array_{i:05d}')
        name, k = base, 1
        while name in seen:
            name, k = f'{base}_{k}', k + 1
        seen.add(name)
        names.append(name)
    return names


class _LoadImage:
    """A file (read as RGB) or an RGB array -> the pipeline's results.

    The models are trained on RGB images (the data sets render or read RGB
    and the configs' preprocessors do not swap channels), so a file is
    converted from OpenCV's BGR and an array is taken as RGB, as the data
    sets' ``img``.
    """

    def __call__(self, item: InputType) -> dict:
        import mmcv
        if isinstance(item, np.ndarray):
            img, path = item, None
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            if img.ndim != 3 or img.shape[2] != 3:
                raise UserError(f'an input array has shape {img.shape}; give '
                                'an RGB image (H, W, 3) or a grey one (H, W)')
            if img.dtype != np.uint8:
                raise UserError(f'an input array is {img.dtype}; give uint8 '
                                'pixels (0-255)')
        else:
            path = item
            try:
                img = mmcv.imread(path, flag='color', channel_order='bgr')
            except Exception as e:  # cv2 / PIL errors on damaged files
                raise UserError(f'image {path} cannot be read ({e})') from e
            if img is None:
                raise UserError(f'image {path} cannot be read: not an image '
                                'file, or damaged')
            img = mmcv.bgr2rgb(img)
        return dict(img=img, img_path=path, ori_shape=img.shape[:2],
                    img_shape=img.shape[:2])


@INFERENCERS.register_module()
class BranchedMTLInferencer(BaseInferencer):
    """Every task's prediction on images, written as arrays and pictures.

    Args:
        model: Config file (or loaded config) of a
            :class:`BranchedMultiTaskModel`.
        weights: Its checkpoint; it must be of the config's tree (a
            checkpoint of another tree, other tasks or other blocks is an
            error naming what differs).
        device: ``cpu``, ``cuda``, ...; None: mmengine's choice.
        img_size: ``(H, W)`` every image is resized to before the model;
            ``'auto'``: the config's test image size
            (:func:`inference_size`); None: each image's own size.
        show_progress: Show a progress bar.

    Example:
        >>> inferencer = BranchedMTLInferencer(CONFIG, CHECKPOINT)
        >>> result = inferencer('photo.png', out_dir='predictions')
        >>> result['predictions'][0]['depth'].shape
        (64, 128)
    """

    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = {'return_vis', 'vis_dir'}
    postprocess_kwargs: set = {'pred_dir'}

    def __init__(self,
                 model: Union[str, Config],
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 img_size: Union[str, Tuple[int, int], None] = 'auto',
                 show_progress: bool = False) -> None:
        if isinstance(model, str) and not osp.isfile(model):
            # BaseInferencer would look the name up in metafiles
            raise UserError(f'config file {model} does not exist')
        init_default_scope('branched_mtl')
        self._img_size = img_size
        self._names: List[str] = []
        super().__init__(model=model, weights=weights, device=device,
                         scope='branched_mtl', show_progress=show_progress)
        self.tasks = list(self.model.tasks)
        self.dataset_meta = dict(getattr(self.model, 'dataset_meta', {}))

    def _init_model(self, cfg: Config, weights: Optional[str],
                    device: str = 'cpu') -> nn.Module:
        return init_model(cfg, weights, device)

    def _init_pipeline(self, cfg: Config):
        from mmcv.transforms import Compose, Resize
        from mmpretrain.datasets.transforms import PackInputs
        size = inference_size(cfg) if self._img_size == 'auto' \
            else self._img_size
        self.img_size = tuple(size) if size is not None else None
        steps: List[Any] = [_LoadImage()]
        if self.img_size is not None:
            h, w = self.img_size
            # the scale the model was trained at: a dense head's receptive
            # field and a digit's size in pixels are learnt at that scale
            steps.append(Resize(scale=(w, h), keep_ratio=False))
        steps.append(PackInputs(meta_keys=('img_path', 'ori_shape',
                                           'img_shape', 'scale_factor')))
        return Compose(steps)

    def _inputs_to_list(self, inputs: Any) -> list:
        return list_images(inputs)

    def __call__(self,
                 inputs: Union[InputType, Sequence[InputType]],
                 return_datasamples: bool = False,
                 batch_size: int = 1,
                 out_dir: str = '',
                 return_vis: bool = False) -> dict:
        """Predict every task on ``inputs``.

        Args:
            inputs: An image file, a folder, a text file listing images,
                an RGB uint8 array, or a list of these.
            return_datasamples: Return the models' data samples instead of
                arrays.
            batch_size: Images per forward pass.
            out_dir: Where to write the arrays, pictures and figures (one
                folder per image); '' writes nothing.
            return_vis: Also return each image's figure as an RGB array.

        Returns:
            ``dict(predictions=[{task: array}], visualization=[figure])``,
            one entry per image, in input order (see :meth:`postprocess`).
        """
        self._names = _unique_names(list_images(inputs))
        return super().__call__(inputs, return_datasamples=return_datasamples,
                                batch_size=batch_size, return_vis=return_vis,
                                vis_dir=out_dir, pred_dir=out_dir)

    def _image(self, item: InputType) -> np.ndarray:
        """The RGB image the model saw (loaded and resized again: cheap,
        and the pipeline's tensors are already normalised and batched)."""
        import mmcv
        img = _LoadImage()(item)['img']
        if self.img_size is not None and img.shape[:2] != self.img_size:
            img = mmcv.imresize(img, self.img_size[::-1])
        return img

    def _panels(self, pred: BaseDataElement) -> List[Tuple[str, str,
                                                           np.ndarray]]:
        panels = []
        for task in self.tasks:
            found = task_array(pred.get(task))
            if found is None:
                raise RuntimeError(f'the model predicted nothing for task '
                                   f'{task!r} (fields: {list(pred.keys())})')
            panels.append((task, *found))
        return panels

    def visualize(self,
                  inputs: list,
                  preds: List[BaseDataElement],
                  return_vis: bool = False,
                  vis_dir: str = '') -> Optional[List[np.ndarray]]:
        """Write each task's picture and each image's figure.

        Args:
            inputs: The images (as :func:`list_images` gives them).
            preds: The model's data samples.
            return_vis: Return the figures as RGB arrays.
            vis_dir: The output folder; '' writes nothing.

        Returns:
            The figures, when ``return_vis``.
        """
        if not vis_dir and not return_vis:
            return None
        figures = []
        for item, pred, name in zip(inputs, preds, self._names):
            image = self._image(item)
            panels = self._panels(pred)
            folder = osp.join(vis_dir, name) if vis_dir else None
            if folder:
                for task, kind, array in panels:
                    save_task_picture(kind, array,
                                      osp.join(folder, f'{task}.png'),
                                      image, self.dataset_meta, task)
            fig = plot_tasks(
                image, panels, self.dataset_meta,
                osp.join(folder, 'tasks.png') if folder else None, name)
            if return_vis:
                figures.append(figure_to_array(fig))
        return figures if return_vis else None

    def postprocess(self,
                    preds: List[BaseDataElement],
                    visualization: Optional[List[np.ndarray]],
                    return_datasample: bool = False,
                    pred_dir: str = '') -> dict:
        """Per image, every task's prediction as an array (and files).

        Segmentation: labels ``(H, W)``; depth, edges ``(H, W)``; normals
        ``(3, H, W)``; offsets ``(2, H, W)`` (dx, dy in pixels); a class
        task: the score of each class. ``H, W`` are the size the model saw
        (``img_size``).

        Args:
            preds: The model's data samples.
            visualization: What :meth:`visualize` returned.
            return_datasample: Return ``preds`` themselves.
            pred_dir: The output folder; '' writes nothing.

        Returns:
            ``dict(predictions=..., visualization=...)``.
        """
        if return_datasample:
            return dict(predictions=preds, visualization=visualization)
        results = []
        for pred, name in zip(preds, self._names):
            panels = self._panels(pred)
            arrays = {task: array for task, _, array in panels}
            results.append(arrays)
            if pred_dir:
                self._write(osp.join(pred_dir, name), panels,
                            pred.metainfo)
        return dict(predictions=results, visualization=visualization)

    def _write(self, folder: str, panels: list, meta: Dict) -> None:
        summary: Dict[str, Any] = dict(
            image=meta.get('img_path'),
            input_shape=list(meta.get('img_shape', ())),
            original_shape=list(meta.get('ori_shape', ())), tasks={})
        for task, kind, array in panels:
            with open_atomic(osp.join(folder, f'{task}.npy'), 'wb') as f:
                np.save(f, array)
            entry = dict(kind=kind, array=f'{task}.npy',
                         picture=f'{task}.png', shape=list(array.shape))
            if kind == 'classification':
                entry.update(label=int(array.argmax()),
                             score=float(array.max()))
            summary['tasks'][task] = entry
        with open_atomic(osp.join(folder, 'predictions.json')) as f:
            json.dump(summary, f, indent=2)
            f.write('\n')
