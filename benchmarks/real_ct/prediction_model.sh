#!/usr/bin/env bash
# A CT-only model trained on real CT (the three NSCLC-Radiomics cases, the clinical-resolution preset's
# 3d_real configuration, fold all, seed 0), then nnts predict against nnU-Net's full-volume prediction of it on
# real CTs it never saw (the 4D-Lung CT; the Lung-PET-CT-Dx series of ../shared/data):
#   bash benchmarks/real_ct/prediction_model.sh OUT RESULT_JSON
# OUT: the folder convert.sh wrote (OUT/collection). Steps whose outputs exist are skipped.
set -euo pipefail
OUT=$(realpath "${1:?usage: prediction_model.sh OUT RESULT_JSON}")
RESULT=$(realpath -m "${2:?usage: prediction_model.sh OUT RESULT_JSON}")
HERE=$(dirname "$(realpath "$0")")
REPO=$(realpath "$HERE/../..")
export nnUNet_raw=$OUT/nnUNet_raw nnUNet_preprocessed=$OUT/prediction/nnUNet_preprocessed
export nnUNet_results=$OUT/prediction/nnUNet_results nnUNet_extTrainer=$REPO/nnunet_teacher_student/nnunet_ext
export nnUNet_def_n_proc=1 OMP_NUM_THREADS=1
mkdir -p "$OUT/prediction/collection" "$OUT/prediction/test/images" "$OUT/prediction/test/labels"
for p in LUNG1-001 LUNG1-002 LUNG1-003; do ln -sfn "$(realpath "$OUT/collection/$p")" "$OUT/prediction/collection/$p"; done
[[ -f $nnUNet_raw/Dataset902_RealCTTrain3/dataset.json ]] ||
  nnts convert nsclc-radiomics "$OUT/prediction/collection" -d 902 --name RealCTTrain3 -o "$nnUNet_raw" --test-fraction 0
# held-out CTs: 4D-Lung (converted as 901's 4DLung-113) and the Lung-PET-CT-Dx series with its fixture mask
ln -sfn "$nnUNet_raw/Dataset901_RealCT/imagesTr/4DLung-113_0000.nii.gz" "$OUT/prediction/test/images/4DLung-113.nii.gz"
ln -sfn "$nnUNet_raw/Dataset901_RealCT/labelsTr/4DLung-113.nii.gz" "$OUT/prediction/test/labels/4DLung-113.nii.gz"
if [[ ! -f $nnUNet_preprocessed/Dataset902_RealCTTrain3/nnUNetPlans.json ]] ||
   ! grep -q 3d_real "$nnUNet_preprocessed/Dataset902_RealCTTrain3/nnUNetPlans.json"; then
  nnUNetv2_extract_fingerprint -d 902 -np 1 --clean
  nnUNetv2_plan_experiment -d 902
  python -c "from nnunet_teacher_student.nnunet.plans import add_small_configuration as a
a(902, '3d_real', (32, 80, 80), (8, 16, 32, 64, 128), 2, '3d_fullres', 'nnUNetPlans', (3.0, 2.0, 2.0))"
fi
[[ -d $nnUNet_preprocessed/Dataset902_RealCTTrain3/nnUNetPlans_3d_real ]] || nnUNetv2_preprocess -d 902 -c 3d_real -np 1
MODEL=$nnUNet_results/Dataset902_RealCTTrain3/nnUNetTrainerNNTS__nnUNetPlans__3d_real
if [[ ! -f $MODEL/fold_all/checkpoint_final.pth ]]; then
  resume=(); [[ -f $MODEL/fold_all/checkpoint_latest.pth ]] && resume=(--c)
  NNTS_EPOCHS=12 NNTS_ITERATIONS=50 NNTS_VAL_ITERATIONS=2 NNTS_SEED=0 NNTS_SKIP_VALIDATION=1 nnUNet_n_proc_DA=0 \
    nnUNetv2_train 902 3d_real all -tr nnUNetTrainerNNTS -device cpu "${resume[@]}"
fi
SERIES=$(find "$REPO/../shared/data/lung-pet-ct-dx-sample/Lung-PET-CT-Dx" -type d -name "*B40f*" | head -1)
python "$REPO/benchmarks/bench_predict.py" -m "$MODEL" -f all --test-dir "$OUT/prediction/test" --cases 1 \
  --series "$SERIES" --modes default --step-size 1.0 --repeats 1 --out "$RESULT"
