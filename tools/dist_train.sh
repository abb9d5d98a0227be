#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [train.py args...]
# Env: NNODES, NODE_RANK, PORT, MASTER_ADDR (as in mmseg / mmpretrain);
# TRAIN_SCRIPT: the script torchrun starts (default: tools/train.py; the
# recombination sweep's in-process workers use tools/sweep_worker.py).
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}
TRAIN_SCRIPT=${TRAIN_SCRIPT:-"$(dirname "$0")/train.py"}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec $PYTHON -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$TRAIN_SCRIPT" \
    $CONFIG \
    --launcher pytorch "${@:3}"
