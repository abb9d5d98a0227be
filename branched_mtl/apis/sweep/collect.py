"""Collecting a finished sweep into the tournament affinity (Step 3)."""
from .plan import SweepPlan


def collect_sweep(plan: SweepPlan) -> str:
    """Tournament affinity of the finished recombined runs (Step 3).

    Args:
        plan: A sweep whose stage 1 jobs are all done.

    Returns:
        Path of ``affinity_tournament.json``.
    """
    from branched_mtl.affinity import collect_tournament, save_affinity
    runs = [j.job_dir for j in plan.stage(1)]
    tasks, layers, affinity, meta = collect_tournament(runs,
                                                       tasks=plan.tasks)
    meta['sweep'] = dict(mode=plan.mode, splits=plan.splits,
                         work_dir=plan.work_dir, num_jobs=len(runs))
    save_affinity(plan.affinity_path, tasks, layers, 'tournament', affinity,
                  meta)
    return plan.affinity_path
