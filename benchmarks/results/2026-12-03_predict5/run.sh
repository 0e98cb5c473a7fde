#!/bin/bash
# issue 18, session 9: the same FOV benchmarks after the one-lung mirror of the lung region (84bd072)
set -e
cd /work/bench/p18
source /work/main/.venv/bin/activate
export PYTHONPATH=/tmp/snap19 OMP_NUM_THREADS=1 nnUNet_def_n_proc=1
export nnUNet_raw=$PWD/nnUNet_raw nnUNet_preprocessed=$PWD/nnUNet_preprocessed nnUNet_results=$PWD/nnUNet_results
M=nnUNet_results/Dataset921_FovLungT3/nnUNetTrainerNNTS__nnUNetPlans__3d_small
[ -f fov_t3_s9.json ] || python /tmp/snap19/benchmarks/bench_predict.py -m $M -f all -device cpu --test-dir phantom_t3/test_fov --cases 10 --repeats 1 --modes full full-skip default per-lung --out fov_t3_s9.json
M=nnUNet_results/Dataset919_FovLung/nnUNetTrainerNNTS__nnUNetPlans__3d_small
[ -f fov_s9.json ] || python /tmp/snap19/benchmarks/bench_predict.py -m $M -f all -device cpu --test-dir phantom/test_fov --cases 10 --repeats 1 --modes full full-skip default per-lung --out fov_s9.json
echo BENCHED
