#!/usr/bin/env bash
# The srun shared by slurm_train.sh and slurm_test.sh:
#   [GPUS=8] bash tools/slurm_run.sh SCRIPT PARTITION JOB_NAME [SCRIPT_ARGS]
# runs tools/SCRIPT SCRIPT_ARGS in GPUS tasks. Environment: GPUS (8),
# GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (more srun flags).
set -x

SCRIPT=$1
PARTITION=$2
JOB_NAME=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}

PYTHONPATH="$(dirname $0)/..":$PYTHONPATH \
srun -p ${PARTITION} \
    --job-name=${JOB_NAME} \
    --gres=gpu:${GPUS_PER_NODE} \
    --ntasks=${GPUS} \
    --ntasks-per-node=${GPUS_PER_NODE} \
    --cpus-per-task=${CPUS_PER_TASK} \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    python -u "$(dirname "$0")/${SCRIPT}" "${@:4}"
