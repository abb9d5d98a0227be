"""Metrics of the dense tasks that mmseg lacks.

Semantic segmentation and depth use mmseg's ``IoUMetric`` (through
:class:`TaskIoUMetric`, which takes its classes from the config) and
``DepthMetric``. Added here: surface normal angle errors, edge F-measure and
the instance offset error of the paper's Cityscapes table. Like mmseg's
``DepthMetric``, ``process`` keeps a few numbers per image and
``compute_metrics`` reduces them once.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmseg.evaluation.metrics import IoUMetric

from branched_mtl.registry import METRICS


def _data(sample: dict, key: str, metric: str) -> torch.Tensor:
    if key not in sample:
        raise KeyError(f'{metric}: the sample has no {key!r} (fields: '
                       f'{sorted(sample)})')
    value = sample[key]
    return (value['data'] if isinstance(value, dict) else value.data).float()


def _same_size(pred: torch.Tensor, gt: torch.Tensor, metric: str) -> None:
    if pred.shape[-2:] != gt.shape[-2:]:
        raise ValueError(f'{metric}: prediction {tuple(pred.shape)} and '
                         f'ground truth {tuple(gt.shape)} differ in size')


@METRICS.register_module()
class TaskIoUMetric(IoUMetric):
    """mmseg's ``IoUMetric`` whose classes can be given in the config.

    Inside :class:`MultiTaskMetric` a stock metric gets no ``dataset_meta``;
    ``classes`` (or ``num_classes``) supplies what ``IoUMetric`` reads from
    it. Without them the data set's ``classes`` are used, as in mmseg.

    Args:
        classes: Class names.
        num_classes: Number of classes (names are then ``'0'``, ``'1'`` ...).
        **kwargs: As for mmseg's ``IoUMetric`` (``iou_metrics``,
            ``ignore_index`` ...).
    """

    def __init__(self, classes: Optional[Sequence[str]] = None,
                 num_classes: Optional[int] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if classes is None and num_classes is not None:
            classes = [str(i) for i in range(num_classes)]
        self._classes = tuple(classes) if classes is not None else None
        if self._classes is not None:
            self._dataset_meta = dict(classes=self._classes)

    @property
    def dataset_meta(self) -> Optional[dict]:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, meta: dict) -> None:
        meta = dict(meta or {})
        if self._classes is not None:
            meta['classes'] = self._classes
        self._dataset_meta = meta


@METRICS.register_module()
class NormalMetric(BaseMetric):
    """Angle between predicted and true surface normals, in degrees.

    Reports ``mean``, ``median`` and ``rmse`` of the angle over all valid
    pixels of the data set, and ``within_<t>``: the % of pixels with an
    error below each threshold (11.25, 22.5 and 30 degrees). Pixels whose
    true normal is the zero vector (or not finite) are left out. The median
    comes from a histogram with ``bin_deg`` wide bins (its midpoint).

    Args:
        thresholds: Angles (degrees) for ``within_<t>``.
        bin_deg: Histogram bin width of the median, in degrees.
        collect_device, prefix: As in :class:`BaseMetric`.
    """
    def __init__(self, thresholds: Sequence[float] = (11.25, 22.5, 30.0),
                 bin_deg: float = 0.01, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.bin_deg = float(bin_deg)
        self.num_bins = int(np.ceil(180.0 / self.bin_deg))

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = _data(sample, 'pred_normal_map', 'NormalMetric')
            gt = _data(sample, 'gt_normal_map', 'NormalMetric').to(pred)
            _same_size(pred, gt, 'NormalMetric')
            finite = torch.isfinite(gt).all(0)
            gt = torch.nan_to_num(gt)
            valid = finite & (gt.norm(dim=0) > 0.5)
            p = torch.nn.functional.normalize(pred, dim=0)[:, valid]
            g = torch.nn.functional.normalize(gt, dim=0)[:, valid]
            cos = (p * g).sum(0).clamp(-1, 1).double()
            angle = torch.rad2deg(torch.arccos(cos))
            hist = torch.histc(angle, bins=self.num_bins, min=0,
                               max=self.num_bins * self.bin_deg)
            self.results.append(dict(
                count=int(angle.numel()),
                sum=float(angle.sum()),
                sq_sum=float((angle**2).sum()),
                within=[int((angle < t).sum()) for t in self.thresholds],
                hist=hist.to(torch.int64).cpu().numpy()))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        count = sum(r['count'] for r in results)
        if count == 0:
            raise ValueError('NormalMetric: no valid pixel in the data set')
        hist = np.sum([r['hist'] for r in results], axis=0)
        cdf = np.cumsum(hist)
        mid = np.searchsorted(cdf, count / 2.0)
        out = dict(
            mean=sum(r['sum'] for r in results) / count,
            median=(mid + 0.5) * self.bin_deg,
            rmse=float(np.sqrt(sum(r['sq_sum'] for r in results) / count)))
        for i, t in enumerate(self.thresholds):
            out[f'within_{t:g}'] = 100.0 * sum(
                r['within'][i] for r in results) / count
        return out


@METRICS.register_module()
class EdgeMetric(BaseMetric):
    """Edge F-measure at the best data-set-wide threshold (ODS).

    For each threshold, predicted edge pixels (``prob >= t``) are matched to
    true edge pixels within ``tolerance`` pixels (a square neighbourhood;
    0 means the same pixel): precision is the share of predicted pixels near
    a true edge, recall the share of true pixels near a predicted edge.
    Pixels labelled ``ignore_index`` are left out. Reports ``fmeasure``
    (ODS, in %) and the ``precision``, ``recall`` and ``threshold`` there.
    There is no edge thinning (unlike the BSDS benchmark).

    Args:
        thresholds: Number of thresholds evenly spaced in (0, 1).
        tolerance: Matching distance in pixels.
        ignore_index: Label of unlabelled pixels.
        collect_device, prefix: As in :class:`BaseMetric`.
    """
    def __init__(self, thresholds: int = 99, tolerance: int = 0,
                 ignore_index: int = 255, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.thresholds = torch.linspace(0, 1, thresholds + 2)[1:-1]
        self.tolerance = int(tolerance)
        self.ignore_index = ignore_index

    def _near(self, mask: torch.Tensor) -> torch.Tensor:
        if self.tolerance == 0:
            return mask
        k = 2 * self.tolerance + 1
        return torch.nn.functional.max_pool2d(
            mask[None, None].float(), k, 1, self.tolerance)[0, 0] > 0

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            prob = _data(sample, 'pred_edge_map', 'EdgeMetric').squeeze(0)
            gt = _data(sample, 'gt_edge_map', 'EdgeMetric').squeeze(0).to(
                prob.device)
            _same_size(prob, gt, 'EdgeMetric')
            valid = gt != self.ignore_index
            true = (gt == 1) & valid
            true_near = self._near(true)
            rows = []
            for t in self.thresholds.tolist():
                pred = (prob >= t) & valid
                rows.append([
                    int((pred & true_near).sum()),  # matched predictions
                    int(pred.sum()),
                    int((true & self._near(pred)).sum()),  # found edges
                    int(true.sum())
                ])
            self.results.append(np.array(rows, np.int64))

    def compute_metrics(self, results: List[np.ndarray]) -> Dict[str, float]:
        tp_p, n_p, tp_t, n_t = np.sum(results, axis=0).T.astype(np.float64)
        precision = np.divide(tp_p, n_p, out=np.zeros_like(tp_p),
                              where=n_p > 0)
        recall = np.divide(tp_t, n_t, out=np.zeros_like(tp_t), where=n_t > 0)
        denom = precision + recall
        f = np.divide(2 * precision * recall, denom,
                      out=np.zeros_like(denom), where=denom > 0)
        best = int(np.argmax(f))
        return dict(fmeasure=100.0 * f[best],
                    precision=100.0 * precision[best],
                    recall=100.0 * recall[best],
                    threshold=float(self.thresholds[best]))


@METRICS.register_module()
class OffsetMetric(BaseMetric):
    """Mean instance offset error in pixels (the paper's "I (px)").

    The Euclidean distance between predicted and true offsets to the
    instance centre, averaged over all instance pixels of the data set
    (pixels whose true offset is NaN are left out).

    Args:
        collect_device, prefix: As in :class:`BaseMetric`.
    """
    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = _data(sample, 'pred_offset_map', 'OffsetMetric')
            gt = _data(sample, 'gt_offset_map', 'OffsetMetric').to(pred)
            _same_size(pred, gt, 'OffsetMetric')
            valid = torch.isfinite(gt).all(0)
            err = (pred - torch.nan_to_num(gt)).norm(dim=0)[valid]
            self.results.append((float(err.double().sum()),
                                 int(err.numel())))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        count = sum(n for _, n in results)
        if count == 0:
            raise ValueError('OffsetMetric: no instance pixel in the data '
                             'set')
        return dict(mean_error=sum(s for s, _ in results) / count)
