#!/bin/bash
cd /work/bench/p18
source /work/main/.venv/bin/activate
export PYTHONPATH=/tmp/snap18 OMP_NUM_THREADS=1 nnUNet_def_n_proc=1
export nnUNet_raw=$PWD/nnUNet_raw nnUNet_preprocessed=$PWD/nnUNet_preprocessed nnUNet_results=$PWD/nnUNet_results
M=nnUNet_results/Dataset919_FovLung/nnUNetTrainerNNTS__nnUNetPlans__3d_small
python /tmp/snap18/benchmarks/bench_predict.py -m $M -f all -device cpu --test-dir phantom/test_fov --cases 10 --repeats 1 --modes full full-skip default margin5 per-lung box --out fov.json
