#!/usr/bin/env bash
# One GPU session's pseudo-labelling checks, in under 9 minutes (each step
# has its own time limit, so a slow step cannot starve the others).
#
#   bash benchmarks/gpu_pseudo_label_check.sh [OUT_DIR]
#
# Writes OUT_DIR/gpu_pseudo_label.jsonl (one JSON object per step: the
# benchmark's last line plus "step", "rc" and "wall_s") and the logs; name
# the GPU (OUT_DIR/gpu.txt) with every figure taken from it. The steps:
#   1. the exact kNN (torch, fp32) at N = 1,000,000 x 256-d on the GPU, then
#      the Jaccard on the GPU (jaccard_torch) and DBSCAN;
#   2. the IVF kNN at N = 1,000,000 (faiss-gpu when it is installed, else the
#      self-join's products on the GPU, k-means and probes on the host),
#      camera-centred spherical cells (the default), no refinements;
#   3. the GPU-resident Jaccard against the CPU one at N = 200,000 x 256-d
#      (the same exact GPU kNN in both);
#   4. the same at N = 32,621 x 2048-d (MSMT17's size), 3 runs each.
set -u
OUT=${1:-${OUT:-gpu_check_out}}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python -c "import torch, faiss; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'faiss', faiss.__version__, 'faiss gpus', faiss.get_num_gpus())"
  nproc; git rev-parse --short HEAD; } > "$OUT/gpu.txt" 2>&1

# BENCH: the benchmark command (a test replaces it with a stub)
BENCH=${BENCH:-python benchmarks/pseudo_label_bench.py}
M1="--n 1000000 --ids 50000 --dim 256 --noise-norm 0.8 --max-distance 0.61"
K200="--n 200000 --ids 10000 --dim 256 --noise-norm 0.8 --max-distance 0.61"
K32="--n 32621 --ids 1041"

step() {  # step NAME LIMIT_S ARGS...
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" $BENCH "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local last
  last=$(tail -n 1 "$OUT/$name.log")
  python - "$name" "$rc" "$((SECONDS - t0))" "$last" >> "$OUT/gpu_pseudo_label.jsonl" <<'EOF'
import json, sys
name, rc, wall, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
try:
    row = json.loads(last)
except ValueError:
    row = {'error': last[-500:]}
row.update(step=name, rc=rc, wall_s=wall)
print(json.dumps(row))
EOF
}

step exact_1m_jaccard_gpu 140 $M1 --device cuda --knn torch --jaccard-device cuda
step ivf_1m 130 $M1 --device cuda --knn ivf --nprobe 32 --refine-iters 0
step exact_200k_jaccard_gpu 55 $K200 --device cuda --knn torch --jaccard-device cuda
step exact_200k_jaccard_cpu 55 $K200 --device cuda --knn torch --jaccard-device cpu
step exact_32k_jaccard_gpu 60 $K32 --device cuda --knn torch --jaccard-device cuda --repeat 3
step exact_32k_jaccard_cpu 60 $K32 --device cuda --knn torch --jaccard-device cpu --repeat 3
cat "$OUT/gpu.txt" "$OUT/gpu_pseudo_label.jsonl"
