"""Benchmark of ``nnts predict``: its region modes against nnU-Net's full-volume prediction of the same model
(time, CPU time, peak memory, tiles, mask agreement), and peak memory on a large CT.

Modes mode (cases: phantoms generated on the fly, clinical-FOV phantoms, DICOM series, or a folder with
images/ and labels/)::

    python benchmarks/bench_predict.py -m MODEL_FOLDER [--series DICOM_DIR ...] [--clinical N] [--cases N]
                                       [--size tiny|default] [--fov-pad F] [--test-dir DIR] [--modes ...]
                                       [--repeats R] [--tta] [--out report.json]

Per case and mode, timed end to end (the best of ``--repeats``; wall and this process's CPU time, since other
jobs may share the cores): ``full`` = ``nnUNetPredictor`` on the whole CT (its label map, tumour label, no lung
mask, no filtering: the reference); the other modes are :func:`predict_case` without dropping lesions
(``box``: one box around the lungs cut from the CT, every tile; ``per-lung``: a box per lung, every tile;
``full-skip``: the whole CT, only the tiles near the lungs; ``grid-box`` / ``grid-skip``: the whole CT through
nnU-Net's preprocessing, its resampled array cut to the box around the lungs, every tile of the box / only those
near the lungs; ``default``: what ``nnts predict`` does by default; ``aligned`` / ``unaligned``: the default with
its boxes grown onto nnU-Net's whole-CT sample positions (``prediction.grid``) / cut as they are; ``margin5``: the
default with a 5 mm margin, not 10;
``full-shifted``: ``full`` on the CT with 5 mm of air added on its low x and y sides, cut back: nnU-Net's own
reproducibility when the field of view moves). Agreement = DSC of each mode's mask with the
reference inside the lungs grown by 5 mm (where ``nnts predict`` keeps lesions), per case and pooled over the
cases, and against the reference mask where one is known. Peak memory = the kernel's high-water mark (``VmHWM``) reset
before each mode (Linux).

``--clinical N``: real-size phantom chests on a 512 x 512 in-plane grid (0.6-1.0 mm pixels, 1-5 mm slices),
air around the body and a patient table under it, as a clinical field of view has. ``--fov-pad F`` pads every
side of every axis of the other phantoms by F times its size with air.

Memory mode (peak resident memory of ``predict_case`` on a synthetic CT, measured in a child process)::

    python benchmarks/bench_predict.py -m MODEL_FOLDER --memory-volume 512x512x300 [--out report.json]

The synthetic CT is a phantom chest stretched onto the full grid (x by y by z voxels) at the model's
spacing, so the lung box covers most of it: a worst case for the cropped pipeline. Peak memory is the
kernel's high-water mark of the child (``ru_maxrss``), and of ``predict_case`` alone (``VmHWM`` after
resetting it through ``/proc/self/clear_refs``, Linux).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import emit, run_meta  # noqa: E402
from nnunet_teacher_student.commands import add_model_arguments  # noqa: E402

from nnunet_teacher_student.evaluation.metrics import dice  # noqa: E402
from nnunet_teacher_student.core.geometry import Geometry, read_image  # noqa: E402
from nnunet_teacher_student.prediction.lesions import near_mask  # noqa: E402
from nnunet_teacher_student.prediction.case import predict_case  # noqa: E402
from nnunet_teacher_student.prediction.region import tumour_label  # noqa: E402
from nnunet_teacher_student.prediction.settings import PredictSettings  # noqa: E402

#: mode -> predict_case settings (``full`` is nnU-Net's own prediction of the whole CT)
MODES = {
    "full": None,
    "full-shifted": None,
    "box": {
        "lung_crop": True,
        "per_lung": False,
        "skip_tiles": False,
        "crop_after_resampling": False,
    },
    "per-lung": {"lung_crop": True, "per_lung": True, "skip_tiles": False},
    "full-skip": {"lung_crop": False, "skip_tiles": True},
    "grid-box": {"lung_crop": True, "crop_after_resampling": True, "skip_tiles": False},
    "grid-skip": {"lung_crop": True, "crop_after_resampling": True, "skip_tiles": True},
    "aligned": {"align_grid": True},
    "unaligned": {"align_grid": False},
    "margin5": {"margin_mm": 5.0},
    "default": {},
}
SHIFT_MM = 5.0  # full-shifted: the field of view grown by this much air on the low x and y sides
KEEP_MM = (
    5.0  # nnts predict keeps lesions within this distance of the lungs: agreement is measured there
)


def load_predictor(args):
    from nnunet_teacher_student.prediction.region import RegionPredictor

    return RegionPredictor(
        args.model,
        args.folds,
        args.checkpoint,
        device=args.device,
        tta=args.tta,
        step_size=args.step_size,
    )


def clinical_case(seed: int) -> tuple[str, sitk.Image, np.ndarray]:
    """A real-size phantom chest on a 512 x 512 in-plane grid: air around the body and a table under it."""
    from nnunet_teacher_student.phantom.cases import generate_case

    c = generate_case(
        seed, preset="default", scale=1.0, inplane_px=(256, 512), slices=(40, 400), min_tumours=1
    )
    img, ref = clinical_fov(c.ct, sitk.GetArrayFromImage(c.label) > 0, 512)
    return f"clinical_{seed}", img, ref


def clinical_fov(
    ct_img: sitk.Image, label: np.ndarray, inplane: int
) -> tuple[sitk.Image, np.ndarray]:
    """CT and label centred on an ``inplane`` x ``inplane`` grid: air around the body, and an 8 mm patient table
    15 mm under it across 84 % of the width, as a clinical field of view has (z is left as it is)."""
    ct = sitk.GetArrayFromImage(ct_img)
    pad = [(0, 0)] + [((inplane - n) // 2, inplane - n - (inplane - n) // 2) for n in ct.shape[1:]]
    ct, label = np.pad(ct, pad, constant_values=-1000), np.pad(label, pad)
    sy = ct_img.GetSpacing()[1]
    body_rows = np.nonzero((ct > -500).any(axis=(0, 2)))[0]
    top = min(
        inplane - 1, int(body_rows.max() + round(15 / sy))
    )  # 15 mm under the body (y: posterior)
    table = slice(top, min(inplane, top + max(2, int(round(8 / sy)))))  # an 8 mm carbon-fibre slab
    edge = inplane * 40 // 512
    ct[:, table, edge : inplane - edge] = 150
    img = sitk.GetImageFromArray(ct.astype(np.int16))
    spacing = ct_img.GetSpacing()
    img.SetSpacing(spacing)
    img.SetOrigin([o - p[0] * s for o, p, s in zip(ct_img.GetOrigin(), pad[::-1], spacing)])
    img.SetDirection(ct_img.GetDirection())
    return img, label


def cases_of(args) -> list[tuple[str, sitk.Image, np.ndarray | None]]:
    """(name, CT, reference mask or None) of the benchmark cases."""
    out: list[tuple[str, sitk.Image, np.ndarray | None]] = []
    for folder in args.series or []:
        from nnunet_teacher_student.prediction.batch import find_cases

        for case in find_cases(folder):
            out.append((case.name, case.read(), None))
    for i in range(args.clinical):
        out.append(clinical_case(args.seed + i))
    if args.test_dir:
        for p in sorted((Path(args.test_dir) / "images").glob("*.nii.gz"))[: args.cases]:
            name = p.name[: -len(".nii.gz")].removesuffix("_0000")
            out.append(
                pad_fov(
                    name,
                    read_image(p),
                    sitk.GetArrayFromImage(
                        read_image(Path(args.test_dir) / "labels" / f"{name}.nii.gz")
                    )
                    > 0,
                    args.fov_pad,
                )
            )
    elif not out:
        from nnunet_teacher_student.phantom.cases import generate_case

        for i in range(args.cases):
            c = generate_case(args.seed + i, preset=args.size, min_tumours=1)
            out.append(
                pad_fov(
                    f"{args.size}_{args.seed + i}",
                    c.ct,
                    sitk.GetArrayFromImage(c.label) > 0,
                    args.fov_pad,
                )
            )
    return out


def pad_fov(
    name: str, ct: sitk.Image, ref: np.ndarray, fraction: float
) -> tuple[str, sitk.Image, np.ndarray]:
    """CT and reference padded with air on every side by ``fraction`` of each axis."""
    if fraction <= 0:
        return name, ct, ref
    pad = [int(round(fraction * s)) for s in ct.GetSize()]
    return name, sitk.ConstantPad(ct, pad, pad, -1000), np.pad(ref, [(p, p) for p in pad[::-1]])


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def run_mode(predictor, ct: sitk.Image, mode: str, value: int) -> tuple[np.ndarray, dict]:
    """(mask, measurements) of one prediction of ``ct`` in ``mode``."""
    gc.collect()
    reset = _reset_peak()
    tiles0 = predictor.predictor.tiles_run
    t0, c0 = time.perf_counter(), time.process_time()
    if MODES[mode] is None:
        arr, spacing = (
            sitk.GetArrayFromImage(ct).astype(np.float32)[None],
            Geometry.of(ct).spacing[::-1],
        )
        shift = (
            [0, 0] + [int(round(SHIFT_MM / s)) for s in spacing[1:]]
            if mode == "full-shifted"
            else [0] * 4
        )
        arr = np.pad(arr, [(s, 0) for s in shift], constant_values=-1000)
        seg, _, _ = predictor.predict_array(arr, spacing)
        mask, report = seg[shift[1] :, shift[2] :, shift[3] :] == value, None
    else:
        result = predict_case(predictor, ct, PredictSettings(lung_dilation_mm=None, **MODES[mode]))
        mask, report = result.mask > 0, result.report
    row = {
        "wall_s": round(time.perf_counter() - t0, 2),
        "cpu_s": round(time.process_time() - c0, 2),
        "tiles_run": predictor.predictor.tiles_run - tiles0,
        "peak_gb": round(_status_kb("VmHWM") / 2**20, 3) if reset else None,
    }
    if report is not None:
        row.update(
            layout=report["layout"],
            crops=[c["name"] for c in report["crops"]],
            predicted_fraction=report["predicted_fraction"],
            lung_method=report["lung_mask"]["method"],
            timings_s=report["timings_s"],
        )
    return mask, row


def bench_speed(args) -> dict:
    from nnunet_teacher_student.lungs.mask import lung_mask

    predictor = load_predictor(args)
    value, _ = tumour_label(
        predictor.predictor.label_manager, predictor.predictor.dataset_json.get("labels")
    )
    modes = ["full"] + [m for m in args.modes if m != "full"]
    cases = cases_of(args)
    warm = sitk.GetArrayFromImage(cases[0][1]).astype(np.float32)[None, :8, :64, :64]
    predictor.predict_array(
        warm, Geometry.of(cases[0][1]).spacing[::-1]
    )  # first call: torch start-up
    rows = []
    for name, ct, ref in cases:
        spacing = Geometry.of(ct).spacing[::-1]
        lungs = lung_mask(ct)
        keep = near_mask(lungs.mask > 0, spacing, KEEP_MM)
        row = {
            "case": name,
            "size_xyz": list(ct.GetSize()),
            "spacing_xyz": [round(s, 4) for s in ct.GetSpacing()],
            "lung_share": round(float((lungs.mask > 0).mean()), 4),
            "resampled_zyx": list(predictor.resampled_shape(ct.GetSize()[::-1], spacing)),
            "modes": {},
        }
        masks = {}
        for mode in modes:
            best = None
            for _ in range(args.repeats):
                mask, m = run_mode(predictor, ct, mode, value)
                best = m if best is None or m["cpu_s"] < best["cpu_s"] else best
            masks[mode] = mask
            if ref is not None:
                best["dsc_vs_truth"] = round(dice(mask, ref), 4)
            row["modes"][mode] = best
        for mode in modes:
            m = row["modes"][mode]
            m["dsc_vs_full_near_lungs"] = round(dice(masks[mode] & keep, masks["full"] & keep), 4)
            m["voxels_near_lungs"] = int((masks[mode] & keep).sum())
            m["overlap_with_full_near_lungs"] = int((masks[mode] & masks["full"] & keep).sum())
            m["speedup_cpu"] = round(row["modes"]["full"]["cpu_s"] / max(m["cpu_s"], 1e-9), 2)
            m["speedup_wall"] = round(row["modes"]["full"]["wall_s"] / max(m["wall_s"], 1e-9), 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {}
    for mode in modes:
        summary[mode] = {
            "cpu_s": round(sum(r["modes"][mode]["cpu_s"] for r in rows), 2),
            "wall_s": round(sum(r["modes"][mode]["wall_s"] for r in rows), 2),
            "speedup_cpu": round(
                sum(r["modes"]["full"]["cpu_s"] for r in rows)
                / max(sum(r["modes"][mode]["cpu_s"] for r in rows), 1e-9),
                2,
            ),
            "min_dsc_vs_full_near_lungs": min(
                r["modes"][mode]["dsc_vs_full_near_lungs"] for r in rows
            ),
            "pooled_dsc_vs_full_near_lungs": pooled_dice(
                [r["modes"][mode] for r in rows], [r["modes"]["full"] for r in rows]
            ),
            "cases_at_least_0.99": sum(
                r["modes"][mode]["dsc_vs_full_near_lungs"] >= 0.99 for r in rows
            ),
            "max_peak_gb": max((r["modes"][mode]["peak_gb"] or 0) for r in rows),
        }
    return {"cases": rows, "summary": {"n_cases": len(rows), "modes": summary}}


def pooled_dice(rows: list[dict], full_rows: list[dict]) -> float:
    """DSC with the reference over all cases' voxels near the lungs together (1 when both are empty)."""
    inter = sum(r["overlap_with_full_near_lungs"] for r in rows)
    total = sum(r["voxels_near_lungs"] for r in rows) + sum(
        f["voxels_near_lungs"] for f in full_rows
    )
    return round(2.0 * inter / total, 4) if total else 1.0


# --------------------------------------------------------------------------- memory
def parse_volume(text: str) -> tuple[int, int, int]:
    try:
        x, y, z = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"volume must be XxYxZ voxels, e.g. 512x512x300, got {text!r}"
        ) from None
    return x, y, z


def synthetic_ct(size_xyz: tuple[int, int, int], spacing_xyz, seed: int = 0) -> sitk.Image:
    """A tiny phantom chest stretched onto a ``size_xyz`` grid (linear interpolation) at ``spacing_xyz``."""
    from nnunet_teacher_student.phantom.cases import generate_case

    small = generate_case(seed, preset="tiny", min_tumours=1).ct
    extent = np.array(small.GetSize()) * np.array(small.GetSpacing())
    fine = sitk.Resample(
        small,
        [int(s) for s in size_xyz],
        sitk.Transform(),
        sitk.sitkLinear,
        small.GetOrigin(),
        tuple(float(v) for v in extent / np.array(size_xyz)),
        small.GetDirection(),
        -1000,
        sitk.sitkInt16,
    )
    fine.SetSpacing(tuple(float(s) for s in spacing_xyz))
    return fine


def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def memory_child(args) -> dict:
    predictor = load_predictor(args)
    spacing = [
        s * args.spacing_factor for s in predictor.predictor.configuration_manager.spacing[::-1]
    ]  # x, y, z
    ct = synthetic_ct(args.memory_volume, spacing)
    gc.collect()
    rss_before = _status_kb("VmRSS")
    try:  # reset the high-water mark so that VmHWM measures predict_case alone
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:  # resident memory over time, to tell which stage holds the peak
        while not stop.is_set():
            samples.append((time.perf_counter(), _status_kb("VmRSS") or 0))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    sampler.start()
    result = predict_case(
        predictor,
        ct,
        PredictSettings(
            per_lung=True if args.per_lung else None,
            crop_after_resampling=args.crop_after_resampling,
        ),
    )
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    by_stage, start = {}, t0
    for stage in ("lung_mask", "predict", "drop_outside_lungs", "describe"):
        end = start + result.report["timings_s"][stage]
        in_stage = [kb for t, kb in samples if start <= t <= end]
        by_stage[stage] = round(max(in_stage) / 2**20, 3) if in_stage else None
        start = end
    return {
        "volume_xyz": list(args.memory_volume),
        "crop_after_resampling": result.report["crop_after_resampling"],
        "spacing_xyz": [round(s, 4) for s in spacing],
        "predicted_fraction": result.report["predicted_fraction"],
        "timings_s": result.report["timings_s"],
        "lung_method": result.report["lung_mask"]["method"],
        "wall_s": round(wall, 2),
        "spacing_factor": args.spacing_factor,
        "step_size": args.step_size,
        "crop_voxels": int(
            sum(np.prod(np.subtract(c["stop"], c["start"])) for c in result.report["crops"])
        ),
        "network_grid_voxels_approx": int(
            sum(np.prod(np.subtract(c["stop"], c["start"])) for c in result.report["crops"])
            * args.spacing_factor**3
        ),
        "rss_before_predict_gb": round((rss_before or 0) / 2**20, 3),
        "peak_predict_case_gb": round(_status_kb("VmHWM") / 2**20, 3) if reset else None,
        "sampled_peak_rss_by_stage_gb": by_stage,
        "peak_process_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
    }


def bench_memory(args) -> dict:
    cmd = (
        [
            sys.executable,
            __file__,
            "--memory-child",
            "-m",
            str(args.model),
            "--device",
            "cpu",
            "--memory-volume",
            "x".join(map(str, args.memory_volume)),
            "--step-size",
            str(args.step_size),
            "--spacing-factor",
            str(args.spacing_factor),
        ]
        + (["--tta"] if args.tta else [])
        + (["-f", *map(str, args.folds)] if args.folds else [])
        + (["--per-lung"] if args.per_lung else [])
        + (["--crop-after-resampling"] if args.crop_after_resampling else [])
    )
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"memory child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["peak_children_ru_maxrss_gb"] = round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 3
    )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(
        p, "trained model (CT-only)", [0], "folds to ensemble (default 0)", tta=False
    )
    p.add_argument("--per-lung", action="store_true", help="memory mode: one crop per lung")
    p.add_argument(
        "--crop-after-resampling",
        action="store_true",
        help="memory mode: cut the lung box from nnU-Net's resampled CT (nnts predict's option)",
    )
    p.add_argument(
        "--modes",
        nargs="+",
        choices=list(MODES),
        default=list(MODES),
        help="modes to time (full always)",
    )
    p.add_argument(
        "--series", nargs="+", type=Path, help="DICOM series folders (or CT files) to predict"
    )
    p.add_argument(
        "--clinical", type=int, default=0, help="clinical-FOV phantoms (512 x 512 in-plane, table)"
    )
    p.add_argument("--size", default="default", help="phantom preset (tiny, default)")
    p.add_argument(
        "--cases",
        type=int,
        default=4,
        help="phantoms (when no --series/--clinical) or --test-dir cases",
    )
    p.add_argument("--seed", type=int, default=100)
    p.add_argument(
        "--test-dir",
        type=Path,
        default=None,
        help="folder with images/ and labels/ instead of phantoms",
    )
    p.add_argument(
        "--fov-pad",
        type=float,
        default=0.0,
        help="pad each side by this fraction of each axis (air)",
    )
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument(
        "--memory-volume", type=parse_volume, default=None, help="e.g. 512x512x300 (x, y, z voxels)"
    )
    p.add_argument(
        "--spacing-factor",
        type=float,
        default=1.0,
        help="memory mode: CT spacing / model spacing (< 1: nnU-Net resamples the crop to a smaller grid)",
    )
    p.add_argument(
        "--step-size",
        type=float,
        default=0.5,
        help="sliding-window step (the arrays, hence memory, do not depend on it; 1.0 is 8x faster)",
    )
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None, help="write the report as JSON")
    args = p.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args)))
        return
    meta = run_meta(
        device=args.device, tta=args.tta, model=str(args.model), step_size=args.step_size
    )
    if args.memory_volume:
        report = {**meta, "memory": bench_memory(args)}
    else:
        report = {
            **meta,
            "size": args.size,
            "fov_pad": args.fov_pad,
            "repeats": args.repeats,
            "speed": bench_speed(args),
        }
    emit(report, args.out)


if __name__ == "__main__":
    main()
