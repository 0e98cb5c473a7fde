#!/bin/bash
# issue 18, session 8: a model trained on clinical-FOV phantoms (snapshot /tmp/snap18)
set -e
cd /work/bench/p18
source /work/main/.venv/bin/activate
export PYTHONPATH=/tmp/snap18 OMP_NUM_THREADS=1 nnUNet_def_n_proc=1
export nnUNet_raw=$PWD/nnUNet_raw nnUNet_preprocessed=$PWD/nnUNet_preprocessed nnUNet_results=$PWD/nnUNet_results
[ -f phantom/manifest.json ] || python -m nnunet_teacher_student.cli synth -o phantom -d 918 --name TightLung --strong 24 --weak 0 --test 10 --seed 18 --preset default
python /tmp/snap18/benchmarks/make_fov_dataset.py --raw-id 918 --id 919 --name FovLung --factor 2 --test phantom/test --test-out phantom/test_fov
[ -d nnUNet_preprocessed/Dataset919_FovLung/nnUNetPlans_3d_fullres ] || nnUNetv2_plan_and_preprocess -d 919 -c 3d_fullres -np 1 -npfp 1 --verify_dataset_integrity
python -c "from nnunet_teacher_student.nnunet.plans import add_small_configuration as a; a(919, '3d_small', (16, 48, 48), (8, 16, 32, 64), 2)"
export nnUNet_n_proc_DA=0 NNTS_EPOCHS=40 NNTS_ITERATIONS=100 NNTS_VAL_ITERATIONS=10 NNTS_SKIP_VALIDATION=1 NNTS_SEED=0 NNTS_NO_MIRRORING=1
export nnUNet_extTrainer=/tmp/snap18/nnunet_teacher_student/nnunet_ext
C=""; [ -f nnUNet_results/Dataset919_FovLung/nnUNetTrainerNNTS__nnUNetPlans__3d_small/fold_all/checkpoint_latest.pth ] && C="--c"
[ -f nnUNet_results/Dataset919_FovLung/nnUNetTrainerNNTS__nnUNetPlans__3d_small/fold_all/checkpoint_final.pth ] || nnUNetv2_train 919 3d_small all -tr nnUNetTrainerNNTS -device cpu $C
echo TRAINED
