#!/usr/bin/env bash
# issue 31 real-CT teacher study, run from the worktree snapshot /work/wt31.
# usage: teacher.sh KIND... ; FOLDS="2 3" restricts the folds
set -euo pipefail
source /work/main/.venv/bin/activate
export PYTHONPATH=/work/wt31 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
cd /work/wt31
name=$(IFS=_; echo "$*")
python benchmarks/real_ct/teacher_study.py --raw /work/realdata/nnUNet_raw --strong 901 \
  --work /work/realdata/teacher_study --kinds "$@" --epochs 12 --iterations 50 --seed 0 \
  --spacing 3 2 2 --patch 32 80 80 --features 8 16 32 64 128 ${FOLDS:+--folds $FOLDS} \
  --out "/work/realdata/teacher_study/result_${name}.json"
