#!/bin/bash
# issue 18, session 8: the real series with an untrained clinical-size 3d_fullres network (speed and memory only)
cd /work/bench/p18
source /work/main/.venv/bin/activate
export PYTHONPATH=/tmp/snap18 OMP_NUM_THREADS=1 nnUNet_def_n_proc=1
export nnUNet_raw=$PWD/nnUNet_raw nnUNet_preprocessed=$PWD/nnUNet_preprocessed nnUNet_results=$PWD/nnUNet_results
S="/work/shared/data/lung-pet-ct-dx-sample/Lung-PET-CT-Dx/Lung_Dx-A0002/04-25-2007-NA-ThoraxAThoraxRoutine Adult-34834/3.000000-ThoraxRoutine  8.0.0  B40f-10983"
python /tmp/snap18/benchmarks/bench_predict.py -m sized_msd -f all -device cpu --series "$S" --repeats 1 --modes full default --out real_sized.json
echo BENCHED
