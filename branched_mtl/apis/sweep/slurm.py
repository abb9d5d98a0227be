"""A sweep on a Slurm cluster: array scripts and a ``submit.sh``."""
import os
import os.path as osp
import shlex

from branched_mtl.utils.io import write_text_atomic
from .jobs import EXEC_MODES, TOOLS, worker_command, write_jobs
from .plan import SweepPlan
from .worker import write_queue


_SBATCH = """#!/usr/bin/env bash
#SBATCH --job-name={job_name}
#SBATCH --partition={partition}
#SBATCH --array=0-{last}%{max_parallel}
#SBATCH --ntasks={gpus}
#SBATCH --ntasks-per-node={per_node}
{gres}#SBATCH --cpus-per-task={cpus}
#SBATCH --output={log_dir}/%x_%A_%a.out
# One array task per job; a finished job (done.json) exits at once, so the
# array can be submitted again after a failure.
JOBS=(
{jobs}
)
exec bash "${{JOBS[$SLURM_ARRAY_TASK_ID]}}/run.sh"
"""

_WORKER_SBATCH = """#!/usr/bin/env bash
#SBATCH --job-name={job_name}
#SBATCH --partition={partition}
#SBATCH --array=0-{last}
#SBATCH --ntasks={gpus}
#SBATCH --ntasks-per-node={per_node}
{gres}#SBATCH --cpus-per-task={cpus}
#SBATCH --output={log_dir}/%x_%A_%a.out
# One in-process worker per array task: each claims the stage's jobs one
# after another (done.json: skipped), so the array can be submitted again
# after a failure.
cd {cwd} || exit 1
{command}
"""


def write_slurm(plan: SweepPlan,
                partition: str,
                gpus_per_job: int = 1,
                gpus_per_node: int = 8,
                cpus_per_task: int = 5,
                max_parallel: int = 16,
                resume: bool = False,
                job_name: str = 'recombination',
                exec_mode: str = 'in-process') -> str:
    """Write Slurm array scripts for the sweep and a ``submit.sh``.

    Stage 0 (if any), stage 1 and the collection run as three dependent
    submissions (``afterok``).

    Args:
        plan: The sweep.
        partition: Slurm partition.
        gpus_per_job: GPUs (tasks) per job.
        gpus_per_node: GPUs of a node; 0 for CPU nodes (no GPU request).
        cpus_per_task: CPUs per task.
        max_parallel: Array tasks running at once (in-process: the
            number of workers per stage).
        resume: Rerun unfinished jobs from their last checkpoint.
        job_name: Slurm job name prefix.
        exec_mode: ``'in-process'`` (workers that train job after job) or
            ``'per-job'`` (one array task per job).

    Returns:
        Path of ``submit.sh``.
    """
    q = shlex.quote
    if exec_mode not in EXEC_MODES:
        raise ValueError(f'exec mode must be one of {EXEC_MODES}, got '
                         f'{exec_mode!r}')
    for name, value, low in (('--gpus-per-job', gpus_per_job, 1),
                             ('--gpus-per-node', gpus_per_node, 0),
                             ('--cpus-per-task', cpus_per_task, 1),
                             ('--max-parallel', max_parallel, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or \
                value < low:
            raise ValueError(f'{name} must be a whole number >= {low}, got '
                             f'{value!r}')
    write_jobs(plan, 'slurm', gpus_per_job, resume)
    queue = write_queue(plan, resume) if exec_mode == 'in-process' else None
    slurm_dir = osp.join(plan.work_dir, 'slurm')
    log_dir = osp.join(slurm_dir, 'logs')
    os.makedirs(log_dir, exist_ok=True)
    names = []
    for stage in (0, 1):
        jobs = plan.stage(stage)
        if not jobs:
            continue
        path = osp.join(slurm_dir, f'stage{stage}.sbatch')
        # GPUs are asked for only where there are some (0: CPU nodes,
        # one process per task, no --gres that Slurm would refuse there)
        per_node = (min(gpus_per_job, gpus_per_node) if gpus_per_node > 0
                    else gpus_per_job)
        gres = (f'#SBATCH --gres=gpu:{per_node}\n' if gpus_per_node > 0
                else '')
        if queue is not None:
            write_text_atomic(
                _WORKER_SBATCH.format(
                    job_name=f'{job_name}-s{stage}', partition=partition,
                    last=min(max_parallel, len(jobs)) - 1, gpus=gpus_per_job,
                    per_node=per_node, gres=gres, cpus=cpus_per_task,
                    log_dir=log_dir, cwd=q(os.getcwd()),
                    command=worker_command(queue, 'slurm', gpus_per_job,
                                           stage=stage)), path)
            names.append(path)
            continue
        write_text_atomic(
            _SBATCH.format(
                job_name=f'{job_name}-s{stage}', partition=partition,
                last=len(jobs) - 1, max_parallel=max_parallel,
                gpus=gpus_per_job, per_node=per_node, gres=gres,
                cpus=cpus_per_task, log_dir=log_dir,
                jobs='\n'.join(f'  {q(j.job_dir)}' for j in jobs)), path)
        names.append(path)
    runs = ' '.join(q(j.job_dir) for j in plan.stage(1))
    collect = osp.join(slurm_dir, 'collect.sbatch')
    write_text_atomic(
        '#!/usr/bin/env bash\n'
        f'#SBATCH --job-name={job_name}-collect\n'
        f'#SBATCH --partition={partition}\n#SBATCH --ntasks=1\n'
        f'#SBATCH --output={log_dir}/%x_%j.out\n'
        f'cd {q(os.getcwd())}\n'
        f'exec "${{PYTHON:-python}}" {q(TOOLS)}'
        f'/compute_affinity.py --method tournament '
        f'--tasks {",".join(plan.tasks)} --out {q(plan.affinity_path)} '
        f'{runs}\n', collect)
    lines = ['#!/usr/bin/env bash', 'set -e', f'cd {q(slurm_dir)}',
             'DEP=']
    for path in names:
        lines += [f'ID=$(sbatch --parsable $DEP {q(osp.basename(path))})',
                  'echo "submitted $ID"', 'DEP=--dependency=afterok:$ID']
    lines += ['ID=$(sbatch --parsable $DEP collect.sbatch)',
              'echo "submitted $ID (collection)"']
    submit = osp.join(slurm_dir, 'submit.sh')
    write_text_atomic('\n'.join(lines) + '\n', submit)
    os.chmod(submit, 0o755)
    return submit
