#!/bin/bash
# issue 18, session 8: the same with 3x larger tumours (tumour_scale 3, as the tiny preset has)
set -e
cd /work/bench/p18
source /work/main/.venv/bin/activate
export PYTHONPATH=/tmp/snap18 OMP_NUM_THREADS=1 nnUNet_def_n_proc=1
export nnUNet_raw=$PWD/nnUNet_raw nnUNet_preprocessed=$PWD/nnUNet_preprocessed nnUNet_results=$PWD/nnUNet_results
[ -f phantom_t3/manifest.json ] || python -c "
from nnunet_teacher_student.phantom.datasets import write_phantom_datasets as w
w('phantom_t3', 920, n_strong=24, n_weak=0, n_test=10, seed=18, preset='default', dataset_name='TightLungT3', tumour_scale=3.0)"
python /tmp/snap18/benchmarks/make_fov_dataset.py --raw-id 920 --id 921 --name FovLungT3 --factor 2 --test phantom_t3/test --test-out phantom_t3/test_fov
[ -d nnUNet_preprocessed/Dataset921_FovLungT3/nnUNetPlans_3d_fullres ] || nnUNetv2_plan_and_preprocess -d 921 -c 3d_fullres -np 1 -npfp 1 --verify_dataset_integrity
python -c "from nnunet_teacher_student.nnunet.plans import add_small_configuration as a; a(921, '3d_small', (16, 48, 48), (8, 16, 32, 64), 2)"
export nnUNet_n_proc_DA=0 NNTS_EPOCHS=40 NNTS_ITERATIONS=100 NNTS_VAL_ITERATIONS=10 NNTS_SKIP_VALIDATION=1 NNTS_SEED=0 NNTS_NO_MIRRORING=1
export nnUNet_extTrainer=/tmp/snap18/nnunet_teacher_student/nnunet_ext
F=nnUNet_results/Dataset921_FovLungT3/nnUNetTrainerNNTS__nnUNetPlans__3d_small/fold_all
C=""; [ -f $F/checkpoint_latest.pth ] && C="--c"
[ -f $F/checkpoint_final.pth ] || nnUNetv2_train 921 3d_small all -tr nnUNetTrainerNNTS -device cpu $C
echo TRAINED
M=nnUNet_results/Dataset921_FovLungT3/nnUNetTrainerNNTS__nnUNetPlans__3d_small
python /tmp/snap18/benchmarks/bench_predict.py -m $M -f all -device cpu --test-dir phantom_t3/test_fov --cases 10 --repeats 1 --modes full full-shifted full-skip default margin5 per-lung --out fov_t3.json
echo BENCHED
