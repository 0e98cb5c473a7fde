#!/usr/bin/env bash
# GPU check (prepared for a lent GPU machine; < 8 minutes): trainer iteration ratios on a
# realistic patch/network and one inference per student on a 256 x 256 x 200 volume
# (1 x 1 x 1.5 mm). Prints a short table last. Usage: bash benchmarks/gpu_check.sh [WORKDIR]
# On a CPU, for a smoke test: DEVICE=cpu SIZE="32 32 16" PATCH="16 32 32" FEATURES="8 16 32" ITER=2 bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/nnts_gpu_check}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-"256 256 200"}
PATCH=${PATCH:-"64 128 128"}
FEATURES=${FEATURES:-"32 64 128 256 320"}
ITER=${ITER:-20}
PY=${PYTHON:-python3}
if ! (cd / && "$PY" -c "import nnunet_teacher_student") 2>/dev/null; then
  "$PY" -m pip install -q -e . >/dev/null
fi
export nnUNet_def_n_proc=${nnUNet_def_n_proc:-4}
"$PY" benchmarks/bench_trainers.py --work "$WORK" --device "$DEVICE" --iterations "$ITER" --warmup 3 \
  --preset default --cases 6 --np 4 --patch $PATCH --features $FEATURES --batch-size 2 \
  --inference-size $SIZE --out "$WORK/gpu_check.json" 2>&1 | tail -n 14
