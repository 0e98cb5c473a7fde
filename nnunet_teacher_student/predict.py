"""End-to-end tumour prediction (``nnts predict``): lung mask -> crop -> nnU-Net -> paste back ->
drop lesions outside the lungs -> binary tumour mask on the CT's own grid + a JSON report per case.

The network part is :class:`~.inference.RegionPredictor` (nnU-Net's predictor on regions of the CT),
the same engine ``nnts teacher-predict`` uses; this module decides the regions (the lungs), turns
nnU-Net's label map into a tumour mask, and describes the lesions.

Output label: nnU-Net's own segmentation restricted to the tumour label (region models such as the
dual-output student: the last region, i.e. tumour sigmoid > 0.5, never the box; label models: the label
named tumour/lesion/nodule/GTV if there is exactly one, else the highest label, or ``label=``).
Per-lung crops may overlap in the mediastinum: each crop is predicted on its own and the results are
merged by maximum probability and union of the tumour masks.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .core.components import label_components
from .core.errors import InputError
from .core.files import write_text_atomic
from .core.geometry import Geometry, array_to_image, read_image, write_image_atomic
from .cropping import CropBox, crop_image, lung_crop_boxes
from .prediction.region import RegionPredictor

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
TUMOUR_WORDS = ("tumor", "tumour", "lesion", "nodule", "gtv", "cancer")
MERGE_RULE = "overlapping crops: probability = maximum, tumour mask = union"


@dataclass
class CasePrediction:
    """Tumour mask (uint8 0/1, CT grid), tumour probability (float32, 0 outside the crops; only when
    asked for) and the JSON-ready report."""

    mask: np.ndarray
    probability: np.ndarray | None
    report: dict[str, Any]

    def mask_image(self, ct: sitk.Image | Geometry) -> sitk.Image:
        return array_to_image(self.mask, ct if isinstance(ct, Geometry) else Geometry.of(ct))

    def probability_image(self, ct: sitk.Image | Geometry) -> sitk.Image:
        if self.probability is None:
            raise InputError("no probability map: predict with save_probabilities=True")
        return array_to_image(self.probability, ct if isinstance(ct, Geometry) else Geometry.of(ct))


# --------------------------------------------------------------------------- labels
def tumour_label(label_manager, labels: dict | None = None, label: int | None = None) -> tuple[int, int]:
    """(value in nnU-Net's label map, output channel of its probabilities) of the tumour.

    Region models: the last region (DO students: tumour; its label is the last of ``regions_class_order``).
    Label models: ``label`` if given, else the one foreground label whose name says tumour, else the highest.
    """
    if label_manager.has_regions:
        channel = len(label_manager.foreground_regions) - 1
        return int(label_manager.regions_class_order[channel]), channel
    foreground = [int(v) for v in label_manager.foreground_labels]
    if label is not None:
        if int(label) not in foreground:
            raise InputError(f"label {label} is not a foreground label of the model (labels {foreground})")
        return int(label), int(label)
    named = [int(v) for k, v in (labels or {}).items()
             if isinstance(v, int) and v in foreground and any(w in k.lower() for w in TUMOUR_WORDS)]
    value = named[0] if len(named) == 1 else max(foreground)
    return value, value


# --------------------------------------------------------------------------- lesions
def near_mask(mask: np.ndarray, spacing_zyx: Sequence[float], distance_mm: float) -> np.ndarray:
    """Voxels within ``distance_mm`` (Euclidean, physical) of ``mask``: the mask dilated in mm.

    The distance transform runs only on the mask's bounding box grown by the distance, which holds
    every voxel that can be that close."""
    out = np.zeros(mask.shape, bool)
    coords = np.nonzero(mask)
    if not coords[0].size:
        return out
    grow = [int(math.ceil(distance_mm / float(s))) + 1 for s in spacing_zyx]
    box = tuple(slice(max(0, int(c.min()) - g), min(n, int(c.max()) + 1 + g))
                for c, g, n in zip(coords, grow, mask.shape))
    dist = ndimage.distance_transform_edt(~mask[box].astype(bool), sampling=[float(s) for s in spacing_zyx])
    out[box] = dist <= distance_mm
    return out


def drop_outside_lungs(mask: np.ndarray, lungs: np.ndarray, spacing_zyx: Sequence[float],
                       dilation_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the lesions (26-connected components of ``mask``) with at least one voxel within
    ``dilation_mm`` of ``lungs`` (i.e. touching :func:`near_mask`); a kept lesion is kept whole.

    Decided per lesion on its bounding box grown by the distance (which holds every lung voxel that
    close): a lesion overlapping the lungs is kept at once, else a distance transform of that box
    decides. Exact, and far lighter than a distance transform of the whole lung region.

    Returns (kept mask uint8, component labels of ``mask``, ids of the dropped components)."""
    comps, n = label_components(mask)
    if n == 0:
        return np.zeros(mask.shape, np.uint8), comps, np.zeros(0, int)
    lungs = lungs > 0
    sampling = [float(s) for s in spacing_zyx]
    grow = [int(math.ceil(dilation_mm / s)) for s in sampling]
    keep = np.zeros(n + 1, bool)
    for i, sl in enumerate(ndimage.find_objects(comps), start=1):
        if sl is None:
            continue
        box = tuple(slice(max(0, s.start - g), min(size, s.stop + g)) for s, g, size in zip(sl, grow, mask.shape))
        lung_box = lungs[box]
        if not lung_box.any():
            continue
        lesion = comps[box] == i
        if (lesion & lung_box).any():
            keep[i] = True
            continue
        dist = ndimage.distance_transform_edt(~lung_box, sampling=sampling)
        keep[i] = bool((dist[lesion] <= dilation_mm).any())
    return keep[comps].astype(np.uint8), comps, np.flatnonzero(~keep[1:]) + 1


def describe_lesions(mask: np.ndarray, ct: sitk.Image, probability: np.ndarray | None = None,
                     lung_labels: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One entry per 26-connected lesion of ``mask``, largest first: voxels, volume (mL), centroid
    (voxel z, y, x and physical x, y, z in mm, the CT's coordinate system), bounding box, the lung it
    lies in (majority of its voxels in ``lung_labels``: 1 right, 2 left) and probability statistics."""
    comps, n = label_components(mask)
    if n == 0:
        return []
    stats = cc3d.statistics(comps)
    counts = np.asarray(stats["voxel_counts"], np.int64)[1:]
    voxel_ml = float(np.prod(ct.GetSpacing())) / 1000.0
    ids = np.arange(1, n + 1)
    inside = comps > 0
    lesion_ids = comps[inside].astype(np.int64)  # statistics over lesion voxels only (few, even on big CTs)
    lung_votes = None
    if lung_labels is not None:
        votes = lesion_ids * 3 + np.clip(lung_labels[inside], 0, 2)
        lung_votes = np.bincount(votes, minlength=(n + 1) * 3).reshape(n + 1, 3)
    if probability is not None:
        values = probability[inside]
        p_max = ndimage.maximum(values, lesion_ids, ids)
        p_mean = ndimage.mean(values, lesion_ids, ids)
    lesions = []
    for rank, i in enumerate(sorted(ids, key=lambda k: -counts[k - 1]), start=1):
        centroid = [float(v) for v in stats["centroids"][i]]  # z, y, x voxel index
        point = ct.TransformContinuousIndexToPhysicalPoint(centroid[::-1])
        bb = stats["bounding_boxes"][i]
        entry: dict[str, Any] = {
            "id": rank, "voxels": int(counts[i - 1]), "volume_ml": round(counts[i - 1] * voxel_ml, 4),
            "centroid_voxel_zyx": [round(v, 2) for v in centroid],
            "centroid_mm_xyz": [round(float(v), 2) for v in point],
            "bbox_voxel_zyx": {"start": [int(s.start) for s in bb], "stop": [int(s.stop) for s in bb]},
        }
        if lung_votes is not None:
            votes = lung_votes[i]
            entry["lung"] = ("right", "left")[int(np.argmax(votes[1:]))] if votes[1:].any() else None
        if probability is not None:
            entry["probability_max"] = round(float(p_max[i - 1]), 4)
            entry["probability_mean"] = round(float(p_mean[i - 1]), 4)
        lesions.append(entry)
    return lesions


# --------------------------------------------------------------------------- one case
def model_info(predictor: RegionPredictor) -> dict[str, Any]:
    """What the report says about the model."""
    ds = predictor.predictor.dataset_json
    return {"folder": str(predictor.folder), "trainer": predictor.folder.name.split("__")[0],
            "configuration": predictor.folder.name.split("__")[-1], "folds": predictor.folds or "auto",
            "checkpoint": predictor.checkpoint, "tta": bool(predictor.predictor.use_mirroring),
            "trained_on_lung_crops": bool(ds.get("nnts_crops"))}


def predict_case(predictor: RegionPredictor, ct: sitk.Image, lung_crop: bool = True,
                 lung_weights: str | os.PathLike | None = None, per_lung: bool | None = None,
                 margin_mm: float = 10.0, lung_dilation_mm: float | None = 5.0, save_probabilities: bool = False,
                 lung_method: str = "auto", label: int | None = None, what: str = "CT",
                 announce: bool = False, skip_tiles: bool = True) -> CasePrediction:
    """Tumour mask of one CT (in HU) on its own grid.

    ``lung_crop``: predict only the lung box(es) grown by ``margin_mm``; ``per_lung``: one box per lung (True),
    one around both (False), or whichever needs fewer network passes (None). ``skip_tiles``: inside each box,
    the sliding-window tiles farther than ``margin_mm`` from the lungs are not predicted (background).
    ``lung_dilation_mm``: drop lesions with no voxel within this distance of the lung region (None: keep
    all). An empty lung mask falls back to the whole volume and keeps all lesions (a warning says so).
    """
    if predictor.num_input_channels != 1:
        raise InputError(f"model {predictor.folder} expects {predictor.num_input_channels} input channels; "
                         "nnts predict needs a CT-only model (box teachers: use nnts teacher-predict)")
    from .lungs import lung_mask

    t0 = time.perf_counter()
    geometry = Geometry.of(ct)
    spacing = geometry.spacing[::-1]
    shape = geometry.array_shape
    warnings: list[str] = []
    info = model_info(predictor)
    lungs = lung_mask(ct, weights=lung_weights, method=lung_method, what=what)
    t_lungs = time.perf_counter()
    if not lungs.found:
        warnings.append(f"no lung found ({lungs.message}): predicted the whole volume and kept all lesions")
    skip = skip_tiles and lungs.found
    if lung_crop and lungs.found:
        boxes, estimates, layout = choose_regions(predictor, lungs.mask, lungs.labels, spacing, margin_mm, per_lung,
                                                  skip)
    else:
        boxes = [CropBox((0, 0, 0), shape, shape, "full")]
        estimates = [region_estimate(predictor, boxes[0], lungs.mask, spacing, margin_mm, skip)]
        layout = "full volume"
    if info["trained_on_lung_crops"] and boxes[0].name == "full":
        warnings.append("the model was trained on lung crops but predicted the whole volume")

    value, channel = tumour_label(predictor.predictor.label_manager, predictor.predictor.dataset_json.get("labels"),
                                  label)
    mask = np.zeros(shape, bool)
    probability = np.zeros(shape, np.float32)
    if announce:
        for k, (b, e) in enumerate(zip(boxes, estimates), 1):
            grow = (f"; the model's spacing makes it {e['voxel_factor']:.1f}x larger"
                    if e["voxel_factor"] >= 2 else "")
            kept = f"{e['tiles_run']} of {e['tiles']} tiles (the rest are far from the lungs)" \
                if e["tiles_run"] < e["tiles"] else f"{e['tiles']} tile(s)"
            print(f"  {what}: region {k}/{len(boxes)} ({b.name}) {'x'.join(map(str, b.size))} voxels -> "
                  f"{'x'.join(map(str, e['resampled_shape']))} at the model's spacing{grow}; {kept}, "
                  f"{e['network_passes']} network pass(es)", flush=True)
    for box in boxes:  # crop the image, not a full-size array copy of it
        channels = sitk.GetArrayFromImage(crop_image(ct, box)).astype(np.float32)[None]
        tiles = predictor.tile_mask(lungs.mask[box.slices], spacing, margin_mm) if skip else None
        seg, _, probs = predictor.predict_array(channels, spacing, tile_mask=tiles)
        mask[box.slices] |= seg == value
        np.maximum(probability[box.slices], probs[channel], out=probability[box.slices])
        del channels, seg, probs
    t_pred = time.perf_counter()

    dropped: list[dict] = []
    if lung_dilation_mm is not None and lungs.found:
        kept, comps, dropped_ids = drop_outside_lungs(mask, lungs.mask, spacing, lung_dilation_mm)
        if dropped_ids.size:
            dropped = describe_lesions(mask & ~kept.astype(bool), ct, probability)
        del comps
        mask = kept
    mask = mask.astype(np.uint8)
    t_drop = time.perf_counter()
    lesions = describe_lesions(mask, ct, probability, lungs.labels)
    t_post = time.perf_counter()

    voxel_ml = float(np.prod(geometry.spacing)) / 1000.0
    report: dict[str, Any] = {
        "n_lesions": len(lesions),
        "total_volume_ml": round(sum(x["volume_ml"] for x in lesions), 4),
        "lesions": lesions,
        "dropped_outside_lungs": dropped,
        "lung_mask": {"method": lungs.method, "message": lungs.message, "found": lungs.found,
                      "volume_ml": round(int(lungs.mask.sum()) * voxel_ml, 2)},
        "lung_crop": bool(lung_crop and lungs.found), "per_lung": len(boxes) > 1, "layout": layout,
        "skip_tiles": skip,
        "crop_margin_mm": margin_mm, "lung_dilation_mm": lung_dilation_mm,
        "crops": [b.to_dict() for b in boxes], "sliding_window": estimates,
        "predicted_fraction": round(float(sum(np.prod(b.size) for b in boxes)) / float(np.prod(shape)), 4),
        "merge": MERGE_RULE if len(boxes) > 1 else None,
        "tumour_label": value, "model": info, "geometry": geometry.to_dict(),
        "timings_s": {"lung_mask": round(t_lungs - t0, 3), "predict": round(t_pred - t_lungs, 3),
                      "drop_outside_lungs": round(t_drop - t_pred, 3), "describe": round(t_post - t_drop, 3),
                      "total": round(t_post - t0, 3)},
        "warnings": warnings,
    }
    return CasePrediction(mask, probability if save_probabilities else None, report)


# --------------------------------------------------------------------------- regions
def region_estimate(predictor: RegionPredictor, box: CropBox, lung_mask: np.ndarray, spacing_zyx: Sequence[float],
                    margin_mm: float, skip_tiles: bool) -> dict:
    """The sliding window's work in ``box`` (``skip_tiles``: only the tiles near the lungs count)."""
    tiles = predictor.tile_mask(lung_mask[box.slices], spacing_zyx, margin_mm) if skip_tiles else None
    return predictor.work_estimate(box.size, spacing_zyx, tiles)


def choose_regions(predictor: RegionPredictor, lung_mask: np.ndarray, lung_labels: np.ndarray,
                   spacing_zyx: Sequence[float], margin_mm: float, per_lung: bool | None, skip_tiles: bool
                   ) -> tuple[list[CropBox], list[dict], str]:
    """(boxes, their work estimates, layout name): one box per lung or one around both, as asked, or (``per_lung``
    None) whichever costs fewer network passes; a tie goes to the single box (one resampling, no merge)."""
    layouts = {}
    for split in ((False, True) if per_lung is None else (per_lung,)):
        boxes = lung_crop_boxes(lung_labels, spacing_zyx, margin_mm, per_lung=split)
        layouts[split] = (boxes, [region_estimate(predictor, b, lung_mask, spacing_zyx, margin_mm, skip_tiles)
                                  for b in boxes])
    split = min(layouts, key=lambda k: (sum(e["network_passes"] for e in layouts[k][1]), k))
    boxes, estimates = layouts[split]
    name = "one box per lung" if len(boxes) > 1 else "one box around the lungs"
    if per_lung is None and len(layouts) > 1:
        cost = {k: sum(e["network_passes"] for e in v[1]) for k, v in layouts.items()}
        name += f" (fewer network passes: {cost[split]} vs {cost[not split]})"
    return boxes, estimates, name


# --------------------------------------------------------------------------- inputs
@dataclass
class CaseInput:
    """One CT to predict: an image file or a DICOM series."""

    name: str
    path: Path
    series: Any = field(default=None, repr=False)  # dataset_conversion.dicom_series.SeriesFiles

    def read(self) -> sitk.Image:
        if self.series is None:
            image = read_image(self.path)
            if image.GetNumberOfComponentsPerPixel() != 1:
                raise InputError(f"{self.path}: expected a single-channel CT, got "
                                 f"{image.GetNumberOfComponentsPerPixel()} components per voxel")
            return image
        from .dataset_conversion.dicom_series import read_ct_series

        return read_ct_series(self.series).image


def image_suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), None)


def _case_name(path: Path) -> str:
    stem = path.name[: -len(image_suffix(path) or "")]
    return stem[:-5] if stem.endswith("_0000") else stem  # nnU-Net's channel suffix


def find_cases(root: str | os.PathLike) -> list[CaseInput]:
    """The CTs under ``root``: the file itself; or the image files directly in the folder plus every CT
    DICOM series below it (case name: the series folder's path, ``/`` -> ``__``). Names are unique."""
    root = Path(root)
    if root.is_file():
        if image_suffix(root) is None:
            raise InputError(f"{root}: not an image file ({', '.join(IMAGE_SUFFIXES)}) or a DICOM series folder")
        return [CaseInput(_case_name(root), root)]
    if not root.is_dir():
        raise InputError(f"{root}: no such file or folder")
    from .dataset_conversion.dicom_series import scan_dicom_tree

    cases = [CaseInput(_case_name(p), p) for p in sorted(root.iterdir())
             if p.is_file() and not p.name.startswith(".") and image_suffix(p)]
    series, problems = scan_dicom_tree(root)
    ct_series = [s for s in series.values() if s.modality in ("CT", "")]
    by_folder: dict[Path, list] = {}
    for s in ct_series:
        by_folder.setdefault(s.folder, []).append(s)
    for folder, group in sorted(by_folder.items()):
        rel = folder.relative_to(root)
        base = "__".join(rel.parts) if rel.parts else root.resolve().name
        for s in sorted(group, key=lambda s: (s.number, s.uid)):
            name = base if len(group) == 1 else f"{base}_s{s.number or s.uid[-8:]}"
            cases.append(CaseInput(name, folder, s))
    if not cases:
        found = sorted({s.modality or "?" for s in series.values()})
        raise InputError(f"{root}: no CT found (image files {', '.join(IMAGE_SUFFIXES)} or CT DICOM series)"
                         + (f"; DICOM series of modality {found}" if found else "")
                         + (f"; {problems[0]}" if problems else ""))
    names = [c.name for c in cases]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"{root}: several inputs map to the same case name(s) {dupes[:5]}; rename them")
    return cases


# --------------------------------------------------------------------------- files
@dataclass
class CaseOutput:
    mask: Path
    report: Path
    probability: Path

    def done(self, save_probabilities: bool) -> bool:
        return self.mask.is_file() and self.report.is_file() and (self.probability.is_file()
                                                                   or not save_probabilities)


def case_output(output: Path, name: str, single_file: bool) -> CaseOutput:
    """Where a case's files go: ``output`` itself (a file name with an image suffix) or
    ``output/<case>.nii.gz``; the report and probability map lie beside the mask."""
    if single_file:
        suffix = image_suffix(output) or ""
        stem = output.name[: -len(suffix)]
        return CaseOutput(output, output.with_name(stem + ".json"), output.with_name(stem + "_probability" + suffix))
    return CaseOutput(output / f"{name}.nii.gz", output / f"{name}.json", output / f"{name}_probability.nii.gz")


@dataclass
class PredictSummary:
    predicted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def predict_path(input: str | os.PathLike, output: str | os.PathLike, model_folder: str | os.PathLike,
                 folds: Sequence[int | str] | None = None, device: str = "cpu", lung_crop: bool = True,
                 tta: bool = True, checkpoint: str = "checkpoint_final.pth", per_lung: bool | None = None,
                 skip_tiles: bool = True, margin_mm: float = 10.0, lung_dilation_mm: float | None = 5.0,
                 lung_weights: str | os.PathLike | None = None, lung_method: str = "auto",
                 save_probabilities: bool = False, label: int | None = None, step_size: float = 0.5,
                 overwrite: bool = False, progress: bool = True, num_parts: int = 1,
                 part_id: int = 0) -> PredictSummary:
    """Predict a CT file, a DICOM series folder, or a folder of either.

    ``output``: a file name with an image suffix (one case), or a folder receiving ``<case>.nii.gz`` and
    ``<case>.json`` (and ``<case>_probability.nii.gz``). ``num_parts``/``part_id``: only this part of a folder's
    cases (see :mod:`.sharding`). Cases whose outputs exist are skipped unless
    ``overwrite``; files are written atomically, the report last. A case that fails with bad input is
    reported and the others go on; :class:`InputError` at the end names the failures.
    """
    from tqdm import tqdm

    from .core.sharding import part_cases

    output = Path(output)
    cases = find_cases(input)
    if num_parts > 1:   # every num_parts-th case by name, as nnts pseudo-label and nnUNetv2_predict share
        mine = set(part_cases([c.name for c in cases], num_parts, part_id))
        cases = [c for c in cases if c.name in mine]
    single_file = image_suffix(output) is not None
    if single_file and len(cases) > 1:
        raise InputError(f"{input}: holds {len(cases)} CTs; give a folder as output, not {output}")
    summary = PredictSummary()
    folder, ours = (output.parent, f".{output.name.split('.')[0]}.*.tmp*") if single_file else (output, ".*.tmp*")
    for stale in (folder.glob(ours) if folder.is_dir() else []):   # atomic writes cut off by a kill
        stale.unlink()
    todo = []
    for case in cases:
        out = case_output(output, case.name, single_file)
        if not overwrite and out.done(save_probabilities):
            summary.skipped.append(case.name)
        else:
            todo.append((case, out))
    predictor = None
    bar = tqdm(todo, desc="nnts predict", unit="case", disable=not progress or not todo)
    for case, out in bar:
        bar.set_postfix_str(case.name)
        try:
            t0 = time.perf_counter()
            ct = case.read()
            t_read = time.perf_counter() - t0
            if predictor is None:  # only load the model when there is work
                predictor = RegionPredictor(model_folder, folds, checkpoint, device, tta, step_size,
                                            progress=progress)   # nnU-Net's bar over the sliding window's tiles
            result = predict_case(predictor, ct, lung_crop=lung_crop, lung_weights=lung_weights,
                                  per_lung=per_lung, margin_mm=margin_mm, lung_dilation_mm=lung_dilation_mm,
                                  save_probabilities=save_probabilities, lung_method=lung_method, label=label,
                                  what=str(case.path), announce=progress, skip_tiles=skip_tiles)
        except InputError as e:
            if len(cases) == 1:
                raise
            summary.failed[case.name] = str(e)
            bar.write(f"nnts predict: {case.name}: {e}")
            continue
        t1 = time.perf_counter()
        out.report.unlink(missing_ok=True)  # a report marks a finished case: remove a stale one first
        write_image_atomic(result.mask_image(ct), out.mask)
        if save_probabilities:
            write_image_atomic(result.probability_image(ct), out.probability)
        report = {"case": case.name, "input": str(case.path), "output": str(out.mask),
                  "probability": str(out.probability) if save_probabilities else None, **result.report}
        report["timings_s"] = {"read": round(t_read, 3), **report["timings_s"],
                               "write": round(time.perf_counter() - t1, 3)}
        write_text_atomic(json.dumps(report, indent=1) + "\n", out.report)
        for w in report["warnings"]:
            bar.write(f"nnts predict: {case.name}: warning: {w}")
        summary.predicted.append(case.name)
    if summary.failed:
        names = ", ".join(f"{k} ({v})" for k, v in list(summary.failed.items())[:5])
        raise InputError(f"{len(summary.failed)} of {len(cases)} case(s) failed: {names}; the others are in "
                         f"{output} (rerun to retry only the failed ones)")
    return summary
