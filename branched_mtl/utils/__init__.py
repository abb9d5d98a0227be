from .dist import prepare_cpu_distributed
from .io import dump_json_atomic, open_atomic, write_text_atomic

__all__ = [
    'dump_json_atomic', 'open_atomic', 'write_text_atomic',
    'prepare_cpu_distributed'
]
