#!/bin/bash
# #18 memory at 512x512x300 from snapshot /tmp/snap5, after run.sh
set -x
while [ ! -f /work/bench/predict2/done ]; do sleep 20; done
cd /tmp/snap5
source /work/main/.venv/bin/activate
export OMP_NUM_THREADS=1 PYTHONPATH=/tmp/snap5
M=/work/bench/demo9/nnUNet_results/Dataset903_PhantomStudentDO/nnUNetTrainerDOStudent__nnUNetPlans__3d_small
O=/work/bench/predict2
[ -f $O/memory.json ] || python benchmarks/bench_predict.py -m $M -device cpu --memory-volume 512x512x300 --step-size 1.0 --out $O/memory.json > $O/memory.log 2>&1
[ -f $O/memory_grid.json ] || python benchmarks/bench_predict.py -m $M -device cpu --memory-volume 512x512x300 --step-size 1.0 --crop-after-resampling --out $O/memory_grid.json > $O/memory_grid.log 2>&1
echo done > $O/mem_done
