#!/usr/bin/env bash
# issue 32, run 6: the test pools (written down before the run in BENCHMARKS.md). $1: family, $2: data seed,
# $3: baseline epochs, $4: upper-bound epochs (both chosen on the tuning pool, tune.sh).
set -euo pipefail
export PYTHONPATH=/tmp/snap32 nnUNet_def_n_proc=1 OMP_NUM_THREADS=1
NNTS="/work/main/.venv/bin/python -m nnunet_teacher_student.cli"
$NNTS benchmark -o /work/bench32/$1 --scenarios scarce=4@msd --seeds 0 1 2 --pool 24 --test 12 --tumour-free 0.1 \
  --family $1 --data-seed $2 --models teacher classical so do so_nnunet baseline upper \
  --epochs-for baseline=$3 upper=$4 -device cpu
