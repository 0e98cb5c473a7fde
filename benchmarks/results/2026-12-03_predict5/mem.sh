#!/bin/bash
# issue 18, session 9: peak memory of nnts predict's default on a 512 x 512 x 300 CT with the clinical-size network
set -e
cd /work/bench/p18
source /work/main/.venv/bin/activate
export PYTHONPATH=/tmp/snap20 OMP_NUM_THREADS=1 nnUNet_def_n_proc=1
[ -f mem_sized_300.json ] || python /tmp/snap20/benchmarks/bench_predict.py -m sized_msd -f all -device cpu --memory-volume 512x512x300 --step-size 1.0 --out mem_sized_300.json
echo DONE
