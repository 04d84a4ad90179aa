#!/usr/bin/env bash
# The launch shared by dist_train.sh and dist_test.sh:
#   bash tools/dist_run.sh SCRIPT GPUS [SCRIPT_ARGS]
# runs tools/SCRIPT SCRIPT_ARGS in GPUS processes per node with
# torch.distributed.run. Environment: NNODES (1), NODE_RANK (0), PORT
# (29500), MASTER_ADDR (127.0.0.1), PYTHON (python).
SCRIPT=$1
GPUS=$2

PYTHONPATH="$(dirname $0)/..":$PYTHONPATH \
${PYTHON:-python} -m torch.distributed.run \
    --nnodes=${NNODES:-1} \
    --node_rank=${NODE_RANK:-0} \
    --master_addr=${MASTER_ADDR:-"127.0.0.1"} \
    --nproc_per_node=$GPUS \
    --master_port=${PORT:-29500} \
    "$(dirname "$0")/$SCRIPT" \
    "${@:3}"
