"""Size, FLOPs and throughput of a trained model, for the report."""
import logging
import time
from typing import Dict

import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import load_checkpoint

from branched_mtl.registry import MODELS


def input_shape(cfg: Config) -> tuple:
    """(C, H, W) of the test images, read from one test sample."""
    from branched_mtl.registry import DATASETS, build_stock
    dataset = build_stock(cfg.test_dataloader.dataset, DATASETS)
    inputs = dataset[0]['inputs']
    return tuple(inputs.shape)


def measure_model(cfg: Config, checkpoint: str, shape: tuple,
                  batch_size: int = 32, repeats: int = 10) -> Dict[str, float]:
    """Parameters, FLOPs (mmengine's complexity analysis) and inference
    throughput on this machine's CPU.

    Args:
        cfg: The model's config.
        checkpoint: Its trained weights.
        shape: (C, H, W) of an input image.
        batch_size: Images per timed forward.
        repeats: Timed forwards (after one warm-up).

    Returns:
        dict with ``params``, ``flops`` (per image) and ``images_per_s``.
    """
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    one = torch.zeros(1, *shape)
    # the FLOP counter warns about every op it skips (batch norm, pooling)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        info = get_model_complexity_info(model, inputs=(one, ),
                                         show_table=False, show_arch=False)
    finally:
        logger.setLevel(level)
    x = torch.randn(batch_size, *shape)
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        elapsed = time.perf_counter() - start
    return dict(params=int(params), flops=float(info['flops']),
                images_per_s=batch_size * repeats / elapsed)
