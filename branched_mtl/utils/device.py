"""Which device a process computes on, in words (cost records, logs)."""
from typing import Any, Optional

__all__ = ['device_name']


def device_name(device: Optional[Any] = None) -> str:
    """``'GPU (<name>)'`` or ``'CPU (<n> threads)'``.

    Args:
        device: A ``torch.device`` or its name (``'cuda:1'``, ``'cpu'``);
            None: the current CUDA device when there is one, else the CPU.
    """
    import torch
    if device is None:
        cuda = torch.cuda.is_available()
    else:
        device = torch.device(device)
        cuda = device.type == 'cuda'
    if cuda:
        return f'GPU ({torch.cuda.get_device_name(device)})'
    return f'CPU ({torch.get_num_threads()} threads)'
