#!/usr/bin/env bash
# Usage: [GPUS=8] bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [PY_ARGS]
# GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS: see slurm_run.sh.
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
exec bash "$(dirname "$0")/slurm_run.sh" test.py "$PARTITION" "$JOB_NAME" \
    "$CONFIG" "$CHECKPOINT" --launcher="slurm" "${@:5}"
