#!/bin/bash
# #18 run 4 (grid alignment without extra tiles) from snapshot /tmp/snap18c (commit in commit.txt)
set -x
cd /tmp/snap18c
source /work/main/.venv/bin/activate
export OMP_NUM_THREADS=1 PYTHONPATH=/tmp/snap18c
M=/work/bench/demo9/nnUNet_results/Dataset902_PhantomStudentSO/nnUNetTrainerSOStudent__nnUNetPlans__3d_small
O=/work/bench/predict4
MODES="full full-skip grid-skip default-unaligned default"
[ -f $O/testpad.json ] || python benchmarks/bench_predict.py -m $M -device cpu --test-dir /work/bench/demo9/phantom/test --cases 10 --fov-pad 0.5 --repeats 1 --modes $MODES --out $O/testpad.json > $O/testpad.log 2>&1
[ -f $O/real.json ] || python benchmarks/bench_predict.py -m $M -device cpu --series "/work/shared/data/lung-pet-ct-dx-sample/Lung-PET-CT-Dx/Lung_Dx-A0002/04-25-2007-NA-ThoraxAThoraxRoutine Adult-34834/3.000000-ThoraxRoutine  8.0.0  B40f-10983" --repeats 1 --modes full default-unaligned default --out $O/real.json > $O/real.log 2>&1
[ -f $O/clinical.json ] || python benchmarks/bench_predict.py -m $M -device cpu --clinical 1 --seed 300 --repeats 1 --step-size 1.0 --modes full default-unaligned default --out $O/clinical.json > $O/clinical.log 2>&1
echo done > $O/done
