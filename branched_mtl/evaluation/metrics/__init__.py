from .multi_task_metric import MultiTaskMetric, delta_m

__all__ = ['MultiTaskMetric', 'delta_m']
