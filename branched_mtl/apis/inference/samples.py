"""A trained model's predictions on a few test images, beside their ground
truth (the figure of the main job's report)."""
from typing import Any, Dict, List, Optional

import torch
from mmengine.config import Config

from branched_mtl.visualization.predictions import (plot_predictions_vs_gt,
                                                    task_array)
from .model import init_model

__all__ = ['predict_test_samples', 'plot_test_predictions']


def predict_test_samples(config: str, checkpoint: str, num_images: int = 3,
                         device: str = 'cpu') -> Dict[str, Any]:
    """Predict the first ``num_images`` samples of the config's test set.

    The samples go through the test set's own pipeline and the model's
    ``predict`` (as ``tools/test.py`` does), so the figure shows what the
    report's metrics measured.

    Args:
        config: The model's config file.
        checkpoint: Its checkpoint.
        num_images: How many test images (the first ones, for the same
            images in every report).
        device: Where the model runs.

    Returns:
        ``dict(tasks, meta, rows)``; rows as
        :func:`plot_predictions_vs_gt` takes them.
    """
    from branched_mtl.registry import DATASETS
    model = init_model(config, checkpoint, device)
    cfg = Config.fromfile(config)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    count = min(int(num_images), len(dataset))
    samples = [dataset[i] for i in range(count)]
    with torch.no_grad():
        preds = model.test_step(dict(
            inputs=[s['inputs'] for s in samples],
            data_samples=[s['data_samples'] for s in samples]))
    rows: List[Dict[str, Any]] = []
    for i, (sample, pred) in enumerate(zip(samples, preds)):
        row = dict(image=sample['inputs'].permute(1, 2, 0).numpy(),
                   name=f'test image {i}', pred={}, gt={})
        for task in model.tasks:
            sub = pred.get(task)
            row['pred'][task] = task_array(sub)
            gt = task_array(sub, gt=True)
            if gt is not None:
                row['gt'][task] = gt
        rows.append(row)
    meta = dict(getattr(model, 'dataset_meta', {}) or {})
    return dict(tasks=list(model.tasks), meta=meta, rows=rows)


def plot_test_predictions(config: str, checkpoint: str, path: str,
                          num_images: int = 3,
                          title: Optional[str] = None) -> Dict[str, Any]:
    """Write the figure of :func:`predict_test_samples` to ``path``: per
    image, every task's prediction above its ground truth.

    Returns:
        What :func:`predict_test_samples` returned.
    """
    found = predict_test_samples(config, checkpoint, num_images)
    plot_predictions_vs_gt(found['rows'], found['tasks'], path,
                           found['meta'], title or '')
    return found
