#!/usr/bin/env bash
# issue 32, run 6: budgets of the baseline and the upper bound chosen on a TUNING pool (data seed 1), never
# on the test pools. From a snapshot of the source: /tmp/snap32 (git worktree of the commit named in commit.txt).
set -euo pipefail
export PYTHONPATH=/tmp/snap32 nnUNet_def_n_proc=1 OMP_NUM_THREADS=1
NNTS="/work/main/.venv/bin/python -m nnunet_teacher_student.cli"
COMMON="--scenarios scarce=4@msd --seeds 0 --pool 24 --test 12 --tumour-free 0.1 --data-seed 1 -device cpu"
case "$1" in
  a) $NNTS benchmark -o /work/bench32/tune_e30 $COMMON --models baseline upper --epochs 30 ;;
  b) $NNTS benchmark -o /work/bench32/tune_e5 $COMMON --models baseline --epochs 5
     $NNTS benchmark -o /work/bench32/tune_e10 $COMMON --models baseline upper --epochs 10 ;;
esac
