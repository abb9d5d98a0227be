"""High-level entry points: derived configs (Steps 1-2) and the sweep."""
from .configs import (add_affinity_hook, config_tasks, disable_validation,
                      recombined_config, resolve_tasks_arg,
                      set_data_fraction, set_train_iters,
                      shared_bottom_config, single_task_config)

__all__ = [
    'config_tasks', 'single_task_config', 'recombined_config',
    'shared_bottom_config', 'add_affinity_hook', 'set_train_iters',
    'set_data_fraction', 'disable_validation', 'resolve_tasks_arg'
]
