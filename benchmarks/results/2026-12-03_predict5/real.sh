#!/bin/bash
# issue 18, session 9: the shipped default (aligned box, e61fe0a) against full-volume prediction on the real series,
# clinical-size untrained network, one process on an otherwise quiet machine
set -e
cd /work/bench/p18
source /work/main/.venv/bin/activate
export PYTHONPATH=/tmp/snap20 OMP_NUM_THREADS=1 nnUNet_def_n_proc=1
S="/work/shared/data/lung-pet-ct-dx-sample/Lung-PET-CT-Dx/Lung_Dx-A0002/04-25-2007-NA-ThoraxAThoraxRoutine Adult-34834/3.000000-ThoraxRoutine  8.0.0  B40f-10983"
[ -f real_sized_s9.json ] || python /tmp/snap20/benchmarks/bench_predict.py -m sized_msd -f all -device cpu --series "$S" --repeats 1 --modes full default --out real_sized_s9.json
echo DONE
