#!/usr/bin/env bash
# The real-CT cases, from the fetched repositories to an nnU-Net raw dataset and the MSD patch files,
# in one command (README.md beside this file lists the exact repository paths):
#   bash benchmarks/real_ct/convert.sh MIRROR OUT
# MIRROR: the folder holding the fetched git directories (<owner>+<name>/repo), e.g. /work/.mirror.
# OUT: where to write (outside the repository): OUT/src (the extracted files), OUT/collection (one folder
# per patient), OUT/nnUNet_raw/Dataset901_RealCT (3-D CTs with tumour masks), OUT/msd (2-D patches).
# Reruns resume (nnts convert keeps finished cases); nothing is downloaded.
set -euo pipefail
MIRROR=$(realpath "${1:?usage: convert.sh MIRROR OUT}")
OUT=$(realpath -m "${2:?usage: convert.sh MIRROR OUT}")
repo() {  # repo OWNER+NAME PATH...: extract those paths of the fetched snapshot under OUT/src
  local git="$MIRROR/$1/repo"
  [[ -d "$git" ]] || { echo "convert.sh: $git is missing: fetch github:${1/+//} first" >&2; exit 2; }
  shift
  git --git-dir="$git" archive HEAD "$@" | tar -x -C "$OUT/src"
}
mkdir -p "$OUT/src" "$OUT/collection"
repo primakov+precision-medicine-toolbox data/dcms/LUNG1-001_20180209_CT data/dcms/LUNG1-002_20180526_CT \
  data/dcms/LUNG1-003_20180209_CT
repo bhklab+readii tests/4D-Lung/113_HM10395
repo shizoda+data msd/lung_2mm/val_patches.h5 msd/lung_2mm/test_patches.h5 msd/lung_2mm/README.md
for p in LUNG1-001_20180209 LUNG1-002_20180526 LUNG1-003_20180209; do
  ln -sfn "../src/data/dcms/${p}_CT" "$OUT/collection/${p%%_*}"
done
ln -sfn ../src/tests/4D-Lung/113_HM10395 "$OUT/collection/4DLung-113"
mkdir -p "$OUT/msd" && ln -sfn ../src/msd/lung_2mm/val_patches.h5 ../src/msd/lung_2mm/test_patches.h5 -t "$OUT/msd"
# NSCLC-Radiomics names the tumour GTV-1; the 4D-Lung phase-40 % structure set names it Tumor_c40.
nnts convert nsclc-radiomics "$OUT/collection" -d 901 --name RealCT -o "$OUT/nnUNet_raw" \
  --roi-pattern 'GTV-1|Tumor_c40' --test-fraction 0
