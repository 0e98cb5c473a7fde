#!/usr/bin/env bash
# issue 31 MSD 2-D real mixed-supervision bench, from the worktree snapshot /work/wt_msd (resumes when rerun)
set -euo pipefail
source /work/main/.venv/bin/activate
export PYTHONPATH=/work/wt_msd OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
cd /work/wt_msd
python -m nnunet_teacher_student.cli benchmark -o /work/realdata/msd_bench --pool-from /work/realdata/msd_pool \
  --pool 130 --test 130 --scenarios scarce=20 --seeds 0 1 2 --configuration 2d --no-lung-crop \
  --models teacher baseline so do upper --epochs 15 --iterations 50 --val-iterations 2 -device cpu
