#!/usr/bin/env bash
# Usage: [GPUS=8] bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [PY_ARGS]
# GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS: see slurm_run.sh.
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
exec bash "$(dirname "$0")/slurm_run.sh" train.py "$PARTITION" "$JOB_NAME" \
    "$CONFIG" --work-dir="$WORK_DIR" --launcher="slurm" "${@:5}"
