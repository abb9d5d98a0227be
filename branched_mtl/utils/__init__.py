from .device import device_name
from .dist import prepare_cpu_distributed
from .errors import (CheckpointError, CheckpointMissing, UserError,
                     WorkDirBusy, short_repr)
from .io import dump_json_atomic, open_atomic, write_text_atomic
from .lock import WorkDirLock
from .paths import check_output_file, check_work_dir
from .setup_env import register_all_modules

__all__ = [
    'dump_json_atomic', 'open_atomic', 'write_text_atomic',
    'prepare_cpu_distributed', 'UserError', 'CheckpointError',
    'CheckpointMissing', 'WorkDirBusy',
    'short_repr', 'WorkDirLock', 'check_work_dir', 'check_output_file',
    'register_all_modules', 'device_name'
]
