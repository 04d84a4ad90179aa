#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG GPUS [PY_ARGS]
# Without CUDA the processes use the gloo backend on CPU. NNODES, NODE_RANK,
# PORT, MASTER_ADDR, PYTHON: see dist_run.sh.
CONFIG=$1
GPUS=$2
exec bash "$(dirname "$0")/dist_run.sh" train.py "$GPUS" "$CONFIG" \
    --launcher pytorch "${@:3}"
