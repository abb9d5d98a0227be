from .dense_metrics import EdgeMetric, NormalMetric, OffsetMetric, TaskIoUMetric
from .multi_task_metric import MultiTaskMetric, delta_m

__all__ = [
    'MultiTaskMetric', 'delta_m', 'TaskIoUMetric', 'NormalMetric',
    'EdgeMetric', 'OffsetMetric'
]
