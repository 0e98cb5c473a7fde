"""Benchmark of ``nnts predict``: lung-cropped prediction vs nnU-Net's full-volume prediction of the
same model, and peak memory on a large CT.

Speed/accuracy mode (phantoms generated on the fly, or a folder with images/ and labels/)::

    python benchmarks/bench_predict.py -m MODEL_FOLDER [--size tiny|default] [--cases N] [--fov-pad F]
                                       [--repeats R] [--tta] [--out report.json]

For each case: ``full`` = ``nnUNetPredictor`` on the whole CT (its label map, tumour label; no lung mask,
no filtering), ``cropped`` = :func:`predict_case` (lung mask + crop + nnU-Net + paste + dropping lesions
outside the lungs), timed end to end (the best of ``--repeats``). Reports the wall-time ratio full/cropped
and the DSC of each against the reference mask. ``--fov-pad F`` pads every side of every axis by F times
its size with air (-1000 HU) to mimic a clinical field of view (phantoms are cropped tightly around the
chest, so their lung box fills most of the volume); the network's cost does not depend on the content.

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

from nnunet_teacher_student.evaluation.metrics import dice  # noqa: E402
from nnunet_teacher_student.core.geometry import Geometry, read_image  # noqa: E402
from nnunet_teacher_student.predict import predict_case, tumour_label  # noqa: E402


def load_predictor(args):
    from nnunet_teacher_student.prediction.region import RegionPredictor

    return RegionPredictor(args.model, args.folds, device=args.device, tta=args.tta, step_size=args.step_size)


def phantom_cases(args) -> list[tuple[str, sitk.Image, np.ndarray]]:
    """(name, CT, reference mask) of the benchmark cases."""
    if args.test_dir:
        images = sorted((Path(args.test_dir) / "images").glob("*.nii.gz"))[: args.cases]
        out = []
        for p in images:
            name = p.name[: -len(".nii.gz")].removesuffix("_0000")
            out.append((name, read_image(p),
                        sitk.GetArrayFromImage(read_image(Path(args.test_dir) / "labels" / f"{name}.nii.gz")) > 0))
        return out
    from nnunet_teacher_student.phantom.cases import generate_case

    out = []
    for i in range(args.cases):
        c = generate_case(args.seed + i, preset=args.size, min_tumours=1)
        out.append((f"{args.size}_{args.seed + i}", c.ct, sitk.GetArrayFromImage(c.label) > 0))
    return out


def pad_fov(ct: sitk.Image, ref: np.ndarray, fraction: float) -> tuple[sitk.Image, np.ndarray]:
    """CT and reference padded with air on every side by ``fraction`` of each axis."""
    if fraction <= 0:
        return ct, ref
    pad = [int(round(fraction * s)) for s in ct.GetSize()]
    big = sitk.ConstantPad(ct, pad, pad, -1000)
    ref = np.pad(ref, [(p, p) for p in pad[::-1]])
    return big, ref


def bench_speed(args) -> dict:
    predictor = load_predictor(args)
    value, _ = tumour_label(predictor.predictor.label_manager, predictor.predictor.dataset_json.get("labels"))
    cases = phantom_cases(args)
    warm = sitk.GetArrayFromImage(cases[0][1]).astype(np.float32)[None]
    predictor.predict_array(warm, Geometry.of(cases[0][1]).spacing[::-1])  # first call: torch start-up
    rows = []
    for name, ct, ref in cases:
        ct, ref = pad_fov(ct, ref, args.fov_pad)
        spacing = Geometry.of(ct).spacing[::-1]
        t_full, t_crop = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            seg, _, _ = predictor.predict_array(sitk.GetArrayFromImage(ct).astype(np.float32)[None], spacing)
            t_full.append(time.perf_counter() - t0)
            full = seg == value
            t0 = time.perf_counter()
            result = predict_case(predictor, ct, per_lung=args.per_lung)
            t_crop.append(time.perf_counter() - t0)
        cropped = result.mask > 0
        rows.append({"case": name, "shape_zyx": list(ref.shape), "spacing_zyx": [round(s, 4) for s in spacing],
                     "predicted_fraction": result.report["predicted_fraction"],
                     "lung_method": result.report["lung_mask"]["method"],
                     "time_full_s": round(min(t_full), 3), "time_cropped_s": round(min(t_crop), 3),
                     "cropped_breakdown_s": result.report["timings_s"],
                     "dsc_full": round(dice(full, ref), 4), "dsc_cropped": round(dice(cropped, ref), 4),
                     "dsc_cropped_vs_full": round(dice(cropped, full), 4)})
        print(json.dumps(rows[-1]), flush=True)
    tf = sum(r["time_full_s"] for r in rows)
    tc = sum(r["time_cropped_s"] for r in rows)
    return {"cases": rows, "summary": {
        "n_cases": len(rows), "time_full_s": round(tf, 3), "time_cropped_s": round(tc, 3),
        "speedup_full_over_cropped": round(tf / tc, 3),
        "mean_predicted_fraction": round(float(np.mean([r["predicted_fraction"] for r in rows])), 4),
        "mean_dsc_full": round(float(np.mean([r["dsc_full"] for r in rows])), 4),
        "mean_dsc_cropped": round(float(np.mean([r["dsc_cropped"] for r in rows])), 4),
        "dsc_difference_cropped_minus_full": round(float(np.mean([r["dsc_cropped"] - r["dsc_full"] for r in rows])), 4),
        "mean_dsc_cropped_vs_full": round(float(np.mean([r["dsc_cropped_vs_full"] for r in rows])), 4)}}


# --------------------------------------------------------------------------- memory
def parse_volume(text: str) -> tuple[int, int, int]:
    try:
        x, y, z = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"volume must be XxYxZ voxels, e.g. 512x512x300, got {text!r}") from None
    return x, y, z


def synthetic_ct(size_xyz: tuple[int, int, int], spacing_xyz, seed: int = 0) -> sitk.Image:
    """A tiny phantom chest stretched onto a ``size_xyz`` grid (linear interpolation) at ``spacing_xyz``."""
    from nnunet_teacher_student.phantom.cases import generate_case

    small = generate_case(seed, preset="tiny", min_tumours=1).ct
    extent = np.array(small.GetSize()) * np.array(small.GetSpacing())
    fine = sitk.Resample(small, [int(s) for s in size_xyz], sitk.Transform(), sitk.sitkLinear, small.GetOrigin(),
                         tuple(float(v) for v in extent / np.array(size_xyz)), small.GetDirection(), -1000,
                         sitk.sitkInt16)
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
    spacing = [s * args.spacing_factor for s in predictor.predictor.configuration_manager.spacing[::-1]]  # x, y, z
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
    result = predict_case(predictor, ct, per_lung=args.per_lung)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    by_stage, start = {}, t0
    for stage in ("lung_mask", "predict", "drop_outside_lungs", "describe"):
        end = start + result.report["timings_s"][stage]
        in_stage = [kb for t, kb in samples if start <= t <= end]
        by_stage[stage] = round(max(in_stage) / 2**20, 3) if in_stage else None
        start = end
    return {"volume_xyz": list(args.memory_volume), "spacing_xyz": [round(s, 4) for s in spacing],
            "predicted_fraction": result.report["predicted_fraction"], "timings_s": result.report["timings_s"],
            "lung_method": result.report["lung_mask"]["method"], "wall_s": round(wall, 2),
            "spacing_factor": args.spacing_factor, "step_size": args.step_size,
            "crop_voxels": int(sum(np.prod(np.subtract(c["stop"], c["start"])) for c in result.report["crops"])),
            "network_grid_voxels_approx": int(sum(np.prod(np.subtract(c["stop"], c["start"]))
                                                  for c in result.report["crops"]) * args.spacing_factor ** 3),
            "rss_before_predict_gb": round((rss_before or 0) / 2**20, 3),
            "peak_predict_case_gb": round(_status_kb("VmHWM") / 2**20, 3) if reset else None,
            "sampled_peak_rss_by_stage_gb": by_stage,
            "peak_process_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}


def bench_memory(args) -> dict:
    cmd = [sys.executable, __file__, "--memory-child", "-m", str(args.model), "--device", "cpu",
           "--memory-volume", "x".join(map(str, args.memory_volume)), "--step-size", str(args.step_size),
           "--spacing-factor", str(args.spacing_factor)] + (["--tta"] if args.tta else []) \
        + (["-f", *map(str, args.folds)] if args.folds else []) + (["--per-lung"] if args.per_lung else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"memory child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["peak_children_ru_maxrss_gb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 3)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-m", "--model", required=True, type=Path, help="trained model folder (CT-only)")
    p.add_argument("-f", "--folds", nargs="+", default=["0"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--tta", action="store_true", help="test-time mirroring (off by default)")
    p.add_argument("--per-lung", action="store_true", help="one crop per lung")
    p.add_argument("--size", default="default", help="phantom preset (tiny, default)")
    p.add_argument("--cases", type=int, default=4)
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--test-dir", type=Path, default=None, help="folder with images/ and labels/ instead of phantoms")
    p.add_argument("--fov-pad", type=float, default=0.0, help="pad each side by this fraction of each axis (air)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--memory-volume", type=parse_volume, default=None, help="e.g. 512x512x300 (x, y, z voxels)")
    p.add_argument("--spacing-factor", type=float, default=1.0,
                   help="memory mode: CT spacing / model spacing (< 1: nnU-Net resamples the crop to a smaller grid)")
    p.add_argument("--step-size", type=float, default=0.5,
                   help="sliding-window step (the arrays, hence memory, do not depend on it; 1.0 is 8x faster)")
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None, help="write the report as JSON")
    args = p.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args)))
        return
    meta = run_meta(device=args.device, tta=args.tta, model=str(args.model), step_size=args.step_size)
    if args.memory_volume:
        report = {**meta, "memory": bench_memory(args)}
    else:
        report = {**meta, "size": args.size, "fov_pad": args.fov_pad, "repeats": args.repeats,
                  "speed": bench_speed(args)}
    emit(report, args.out)


if __name__ == "__main__":
    main()
