"""Benchmark of box-region teacher inference vs nnU-Net's full-volume prediction with the same teacher.

    python benchmarks/bench_teacher_region.py -m TEACHER_MODEL_FOLDER [--volume 512x512x200] [--cases 3]
                                              [--repeats 1] [--tta] [--out report.json]

Cases are phantom chests (``--preset``, with tumours; the boxes are derived from the true masks, one
per lesion per axial slice) placed in the middle of a clinical-size grid (``--volume``, x by y by z
voxels at the phantom's spacing) filled with air. The tumours keep the size the teacher was trained
on; the grid has the voxel count of a clinical CT, which is what full-volume inference pays for (the
network's cost does not depend on the content). ``--volume 0`` keeps the phantom's own grid.

Both modes run :func:`nnunet_teacher_student.teacher.inference.teacher_predict_case` with the same predictor and
the same box constraint; ``full`` predicts the whole grid, ``region`` only the box groups grown by half
a patch. Reported per case: wall times (best of ``--repeats``), their ratio, the DSC between the two
constrained masks, the correlation of the two probability maps inside the regions, and each mask's DSC
against the true mask.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import emit, run_meta  # noqa: E402
from nnunet_teacher_student.commands import add_model_arguments  # noqa: E402

from nnunet_teacher_student.formats.boxes import boxes_from_mask  # noqa: E402
from nnunet_teacher_student.evaluation.metrics import dice  # noqa: E402
from nnunet_teacher_student.teacher.inference import teacher_predict_case, teacher_mode  # noqa: E402


def parse_volume(text: str) -> tuple[int, int, int] | None:
    if text == "0":
        return None
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected XxYxZ voxels (e.g. 512x512x200) or 0, got {text!r}"
        )
    return tuple(int(p) for p in parts)


def embed(
    ct: sitk.Image, label: np.ndarray, size_xyz: tuple[int, int, int] | None
) -> tuple[sitk.Image, np.ndarray]:
    """CT and label centred in a ``size_xyz`` grid of air (never smaller than the phantom)."""
    if size_xyz is None:
        return ct, label
    before = [max(0, (s - c) // 2) for s, c in zip(size_xyz, ct.GetSize())]
    after = [max(0, s - c - b) for s, c, b in zip(size_xyz, ct.GetSize(), before)]
    big = sitk.ConstantPad(ct, before, after, -1000)
    return big, np.pad(label, [(b, a) for b, a in zip(before[::-1], after[::-1])])


def boxset_of(label: np.ndarray, ct: sitk.Image):
    from nnunet_teacher_student.formats.boxes import BoxSet
    from nnunet_teacher_student.core.geometry import Geometry

    return BoxSet(Geometry.of(ct), boxes_from_mask(label > 0))


def bench(args) -> dict:
    from nnunet_teacher_student.prediction.region import RegionPredictor
    from nnunet_teacher_student.phantom.cases import generate_case

    predictor = RegionPredictor(
        args.model,
        args.folds,
        args.checkpoint,
        device=args.device,
        tta=args.tta,
        step_size=args.step_size,
    )
    mode = teacher_mode(args.model)
    rows = []
    for i in range(args.cases):
        case = generate_case(args.seed + i, preset=args.preset, min_tumours=1)
        ct, truth = embed(case.ct, sitk.GetArrayFromImage(case.label) > 0, args.volume)
        boxes = boxset_of(truth, ct)
        if i == 0:  # first call pays torch's start-up: not timed
            teacher_predict_case(
                predictor, case.ct, boxset_of(sitk.GetArrayFromImage(case.label) > 0, case.ct), mode
            )
        times = {"region": [], "full": []}
        preds = {}
        for _ in range(args.repeats):
            for kind in ("region", "full"):
                t0 = time.perf_counter()
                preds[kind] = teacher_predict_case(
                    predictor, ct, boxes, mode, args.box_margin_mm, full_volume=kind == "full"
                )
                times[kind].append(time.perf_counter() - t0)
        region, full = preds["region"], preds["full"]
        inside = np.zeros(truth.shape, bool)
        for r in region.regions:
            inside[r.slices] = True
        pr, pf = region.probability[inside], full.probability[inside]
        corr = float(np.corrcoef(pr, pf)[0, 1]) if pr.std() > 0 and pf.std() > 0 else float("nan")
        row = {
            "case": f"{args.preset}_{args.seed + i}",
            "grid_xyz": list(ct.GetSize()),
            "spacing_xyz": [round(s, 3) for s in ct.GetSpacing()],
            "tumour_voxels": int(truth.sum()),
            "region_voxels": int(inside.sum()),
            "region_share": round(float(inside.mean()), 5),
            "time_region_s": round(min(times["region"]), 3),
            "time_full_s": round(min(times["full"]), 3),
            "speedup": round(min(times["full"]) / min(times["region"]), 1),
            "dsc_region_vs_full": round(dice(region.mask > 0, full.mask > 0), 4),
            "probability_correlation_in_regions": round(corr, 4),
            "dsc_region_vs_truth": round(dice(region.mask > 0, truth), 4),
            "dsc_full_vs_truth": round(dice(full.mask > 0, truth), 4),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    tr, tf = sum(r["time_region_s"] for r in rows), sum(r["time_full_s"] for r in rows)
    return {
        "cases": rows,
        "summary": {
            "n_cases": len(rows),
            "time_region_s": round(tr, 3),
            "time_full_s": round(tf, 3),
            "speedup_full_over_region": round(tf / tr, 1),
            "mean_dsc_region_vs_full": round(
                float(np.mean([r["dsc_region_vs_full"] for r in rows])), 4
            ),
            "min_dsc_region_vs_full": round(
                float(np.min([r["dsc_region_vs_full"] for r in rows])), 4
            ),
            "mean_dsc_region_vs_truth": round(
                float(np.mean([r["dsc_region_vs_truth"] for r in rows])), 4
            ),
            "mean_dsc_full_vs_truth": round(
                float(np.mean([r["dsc_full_vs_truth"] for r in rows])), 4
            ),
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(
        p, "trained box (or point) teacher model", [0], "folds to ensemble (default 0)", tta=False
    )
    p.add_argument(
        "--preset", default="default", help="phantom preset of the cases (tiny, default)"
    )
    p.add_argument(
        "--volume",
        type=parse_volume,
        default=(512, 512, 200),
        help="grid of each case in voxels, XxYxZ (default 512x512x200; 0: the phantom's own grid)",
    )
    p.add_argument("--cases", type=int, default=3)
    p.add_argument(
        "--seed", type=int, default=500, help="first phantom seed (default 500: unseen cases)"
    )
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--box-margin-mm", type=float, default=2.0)
    p.add_argument("--step-size", type=float, default=0.5)
    p.add_argument("--out", type=Path, default=None, help="write the report as JSON")
    args = p.parse_args()
    emit(
        run_meta(
            device=args.device,
            tta=args.tta,
            model=str(args.model),
            step_size=args.step_size,
            bench=bench(args),
        ),
        args.out,
    )


if __name__ == "__main__":
    main()
