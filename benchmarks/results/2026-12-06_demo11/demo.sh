#!/usr/bin/env bash
# the README's main command, from the snapshot (commit in commit.txt), seed 0
set -euo pipefail
export PYTHONPATH=/tmp/snap32 nnUNet_def_n_proc=1 OMP_NUM_THREADS=1
/work/main/.venv/bin/python -m nnunet_teacher_student.cli demo -o /work/bench32/demo11 -device cpu
