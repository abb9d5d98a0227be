#!/usr/bin/env bash
# Usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py args...]
# Env: GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS (as in mmseg).
# GPUS_PER_NODE=0: CPU nodes, GPUS processes and no GPU request (Slurm
# refuses --gres=gpu:N on a node without GPUs).
set -x
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-4}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}

if [ "${GPUS_PER_NODE}" = 0 ]; then
    GRES=()
    TASKS_PER_NODE=${GPUS}
else
    GRES=(--gres=gpu:${GPUS_PER_NODE})
    TASKS_PER_NODE=${GPUS_PER_NODE}
fi

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p ${PARTITION} \
    --job-name=${JOB_NAME} \
    "${GRES[@]}" \
    --ntasks=${GPUS} \
    --ntasks-per-node=${TASKS_PER_NODE} \
    --cpus-per-task=${CPUS_PER_TASK} \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    $PYTHON -u "$(dirname "$0")/train.py" ${CONFIG} --launcher="slurm" "${@:4}"
