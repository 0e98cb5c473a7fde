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

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import SimpleITK as sitk

from ..core import dataset_keys as keys
from ..core.errors import InputError
from ..core.geometry import Geometry, array_to_image, spacing_zyx
from ..lungs.cropping import CropBox, crop_image, lung_crop_boxes
from .lesions import describe_lesions, drop_outside_lungs
from .region import RegionPredictor
from .settings import PredictSettings

if TYPE_CHECKING:
    from ..lungs.mask import LungMaskResult

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


@dataclass
class RegionPlan:
    """The regions of one CT that go through the network, their work estimates and how they were chosen."""

    boxes: list[CropBox]  # what is cut from the CT (the whole CT when ``regrid``)
    estimates: list[dict]  # the sliding window's work per box
    layout: str
    shown: list[CropBox]  # the boxes on the CT's grid (the report's crops)
    regrid: bool  # cut from nnU-Net's resampled CT
    skip_tiles: bool  # tiles far from the lungs not predicted
    aligned: bool  # boxes grown onto nnU-Net's whole-CT sample positions
    lung_crop: bool  # cropped to the lungs (asked for, and lungs found)

    def report(self, settings: PredictSettings, shape: Sequence[int]) -> dict:
        """The report's part on the regions."""
        return {
            "lung_crop": self.lung_crop,
            "per_lung": len(self.boxes) > 1,
            "layout": self.layout,
            "skip_tiles": self.skip_tiles,
            "crop_margin_mm": settings.margin_mm,
            "lung_dilation_mm": settings.lung_dilation_mm,
            "crop_after_resampling": self.regrid,
            "align_grid": self.aligned,
            "crops": [b.to_dict() for b in self.shown],
            "sliding_window": self.estimates,
            "predicted_fraction": round(
                float(sum(np.prod(b.size) for b in self.shown)) / float(np.prod(shape)), 4
            ),
            "merge": MERGE_RULE if len(self.boxes) > 1 else None,
        }

    def announce(self, what: str) -> None:
        """Print each region's size and work, before it starts."""
        for k, (b, e) in enumerate(zip(self.shown, self.estimates), 1):
            grow = (
                f"; the model's spacing makes it {e['voxel_factor']:.1f}x larger"
                if e["voxel_factor"] >= 2
                else ""
            )
            kept = (
                f"{e['tiles_run']} of {e['tiles']} tiles (the rest are far from the lungs)"
                if e["tiles_run"] < e["tiles"]
                else f"{e['tiles']} tile(s)"
            )
            print(
                f"  {what}: region {k}/{len(self.boxes)} ({b.name}) {'x'.join(map(str, b.size))} voxels -> "
                f"{'x'.join(map(str, e['resampled_shape']))} at the model's spacing{grow}; {kept}, "
                f"{e['network_passes']} network pass(es)",
                flush=True,
            )


# --------------------------------------------------------------------------- one case
def model_info(predictor: RegionPredictor) -> dict[str, Any]:
    """What the report says about the model."""
    ds = predictor.predictor.dataset_json
    return {
        "folder": str(predictor.folder),
        "trainer": predictor.folder.name.split("__")[0],
        "configuration": predictor.folder.name.split("__")[-1],
        "folds": predictor.folds or "auto",
        "checkpoint": predictor.checkpoint,
        "tta": bool(predictor.predictor.use_mirroring),
        "trained_on_lung_crops": bool(ds.get(keys.CROPS)),
    }


def check_ct_model(predictor: RegionPredictor) -> None:
    """An :class:`InputError` unless the model takes the CT alone."""
    if predictor.num_input_channels != 1:
        raise InputError(
            f"model {predictor.folder} expects {predictor.num_input_channels} input channels; "
            "nnts predict needs a CT-only model (box teachers: use nnts teacher-predict)"
        )


def case_lungs(ct: sitk.Image, settings: PredictSettings, what: str) -> LungMaskResult:
    """The CT's lung mask, or an empty one with method ``none`` when neither the crop, the lesion filter nor tile
    skipping needs it (nor HU)."""
    from ..lungs.mask import LungMaskResult, lung_mask

    s = settings
    if s.lung_crop or s.lung_dilation_mm is not None or s.skip_tiles:
        return lung_mask(ct, weights=s.lung_weights, method=s.lung_method, what=what)
    empty = np.zeros(Geometry.of(ct).array_shape, np.uint8)
    return LungMaskResult(
        empty, empty, empty, "none", "not computed: no crop, no tile skipping, all lesions kept"
    )


def predict_case(
    predictor: RegionPredictor,
    ct: sitk.Image,
    settings: PredictSettings | None = None,
    what: str = "CT",
    announce: bool = False,
) -> CasePrediction:
    """Tumour mask of one CT (in HU) on its own grid, with ``settings`` (default :class:`PredictSettings`; its
    model fields are the ``predictor``'s business, not used here).

    ``lung_crop``: predict only the lung box(es) grown by ``margin_mm``; ``per_lung``: one box per lung (True),
    one around both (False), or whichever needs fewer network passes (None). ``crop_after_resampling``: the
    whole CT goes through nnU-Net's preprocessing and its resampled array is cut to the box around the lungs
    (nnU-Net's own voxel grid, as full-volume prediction has; ``per_lung`` True still crops the CT first).
    ``skip_tiles``: inside each box, the sliding-window tiles farther than ``margin_mm`` from the lungs are not
    predicted (background). ``align_grid``: each box grown by a few voxels so that nnU-Net's resampling of it samples
    where its resampling of the whole CT does (:mod:`.grid`; :data:`.settings.ALIGN_GRID`).
    ``lung_dilation_mm``: drop lesions with no voxel within this distance of the lung region (None: keep
    all). An empty lung mask falls back to the whole volume and keeps all lesions (a warning says so).
    ``what`` names the CT in messages; ``announce``: print each region's work before it starts.
    """
    s = settings if settings is not None else PredictSettings()
    check_ct_model(predictor)
    t0 = time.perf_counter()
    geometry = Geometry.of(ct)
    spacing = spacing_zyx(geometry)
    warnings: list[str] = []
    info = model_info(predictor)
    lungs = case_lungs(ct, s, what)
    t_lungs = time.perf_counter()
    if not lungs.found and lungs.method != "none":
        warnings.append(
            f"no lung found ({lungs.message}): predicted the whole volume and kept all lesions"
        )
    in_lungs = lungs.mask > 0  # once: the tile masks of every box are views of it
    plan = plan_regions(predictor, lungs, in_lungs, spacing, s)
    if info["trained_on_lung_crops"] and plan.boxes[0].name == "full" and not plan.regrid:
        warnings.append("the model was trained on lung crops but predicted the whole volume")
    value, channel = predictor.tumour(s.label)
    if announce:
        plan.announce(what)
    mask, probability = predict_regions(
        predictor, ct, plan, in_lungs, spacing, s.margin_mm, value, channel
    )
    t_pred = time.perf_counter()
    mask, dropped = keep_near_lungs(mask, lungs, ct, probability, spacing, s.lung_dilation_mm)
    t_drop = time.perf_counter()
    lesions = describe_lesions(mask, ct, probability, lungs.labels)
    t_post = time.perf_counter()

    report: dict[str, Any] = {
        **lesion_report(lesions, dropped, lungs, geometry),
        **plan.report(s, mask.shape),
        "tumour_label": value,
        "model": info,
        "geometry": geometry.to_dict(),
        "timings_s": {
            "lung_mask": round(t_lungs - t0, 3),
            "predict": round(t_pred - t_lungs, 3),
            "drop_outside_lungs": round(t_drop - t_pred, 3),
            "describe": round(t_post - t_drop, 3),
            "total": round(t_post - t0, 3),
        },
        "warnings": warnings,
    }
    return CasePrediction(mask, probability if s.save_probabilities else None, report)


def predict_regions(
    predictor: RegionPredictor,
    ct: sitk.Image,
    plan: RegionPlan,
    in_lungs: np.ndarray,
    spacing: Sequence[float],
    margin_mm: float,
    value: int,
    channel: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(tumour mask, tumour probability) on the CT's grid: each of ``plan``'s boxes predicted on its own (label
    ``value``, probability ``channel``), merged by union and maximum; 0 outside the boxes."""
    shape = in_lungs.shape
    mask = np.zeros(shape, bool)
    probability = np.zeros(shape, np.float32)
    skip, regrid = plan.skip_tiles, plan.regrid
    for box in plan.boxes:  # crop the image, not a full-size array copy of it
        channels = sitk.GetArrayFromImage(crop_image(ct, box)).astype(np.float32)[None]
        tiles = (
            predictor.tile_mask(in_lungs[box.slices], spacing, margin_mm, skip)
            if skip or regrid
            else None
        )
        seg, _, probs = predictor.predict_array(channels, spacing, tile_mask=tiles, crop=regrid)
        mask[box.slices] |= seg == value
        np.maximum(probability[box.slices], probs[channel], out=probability[box.slices])
        del channels, seg, probs
    return mask, probability


def keep_near_lungs(
    mask: np.ndarray,
    lungs: LungMaskResult,
    ct: sitk.Image,
    probability: np.ndarray,
    spacing: Sequence[float],
    dilation_mm: float | None,
) -> tuple[np.ndarray, list[dict]]:
    """(uint8 mask of the lesions with a voxel within ``dilation_mm`` of the ``lungs``, the dropped lesions
    described); all kept when ``dilation_mm`` is None or the lung mask is empty."""
    dropped: list[dict] = []
    if dilation_mm is not None and lungs.found:
        kept, comps, dropped_ids = drop_outside_lungs(mask, lungs.mask, spacing, dilation_mm)
        if dropped_ids.size:
            dropped = describe_lesions(mask & ~kept.astype(bool), ct, probability)
        del comps
        mask = kept
    return mask.astype(np.uint8), dropped


def lesion_report(
    lesions: list[dict], dropped: list[dict], lungs: LungMaskResult, geometry: Geometry
) -> dict[str, Any]:
    """The report's part on the lesions kept, those dropped and the lung mask."""
    voxel_ml = float(np.prod(geometry.spacing)) / 1000.0
    return {
        "n_lesions": len(lesions),
        "total_volume_ml": round(sum(x["volume_ml"] for x in lesions), 4),
        "lesions": lesions,
        "dropped_outside_lungs": dropped,
        "lung_mask": {
            "method": lungs.method,
            "message": lungs.message,
            "found": lungs.found,
            "volume_ml": round(int(lungs.mask.sum()) * voxel_ml, 2),
        },
    }


# --------------------------------------------------------------------------- regions
def plan_regions(
    predictor: RegionPredictor,
    lungs: LungMaskResult,
    in_lungs: np.ndarray,
    spacing: Sequence[float],
    settings: PredictSettings,
) -> RegionPlan:
    """The regions to predict: the lung box(es) (cut from the CT, or from nnU-Net's resampled CT with
    ``crop_after_resampling``), or the whole CT (no crop asked for, or no lungs found)."""
    s = settings
    shape = in_lungs.shape
    skip = s.skip_tiles and lungs.found
    cropped = bool(s.lung_crop and lungs.found)
    regrid = bool(s.crop_after_resampling and cropped and s.per_lung is not True)
    full = [CropBox((0, 0, 0), shape, shape, "full")]
    if regrid:
        estimate = region_estimate(
            predictor, full[0], in_lungs, spacing, s.margin_mm, skip, crop=True
        )
        # the same box on the CT's grid
        shown = lung_crop_boxes(lungs.labels, spacing, s.margin_mm, per_lung=False)
        layout = "one box around the lungs, cut from nnU-Net's resampled CT"
        return RegionPlan(
            full,
            [estimate],
            layout,
            shown,
            regrid=True,
            skip_tiles=skip,
            aligned=False,
            lung_crop=True,
        )
    if cropped:
        boxes, estimates, layout = choose_regions(
            predictor, in_lungs, lungs.labels, spacing, s.margin_mm, s.per_lung, skip, s.align_grid
        )
        aligned = bool(s.align_grid)
        return RegionPlan(
            boxes,
            estimates,
            layout,
            boxes,
            regrid=False,
            skip_tiles=skip,
            aligned=aligned,
            lung_crop=True,
        )
    estimates = [region_estimate(predictor, full[0], in_lungs, spacing, s.margin_mm, skip)]
    return RegionPlan(
        full,
        estimates,
        "full volume",
        full,
        regrid=False,
        skip_tiles=skip,
        aligned=False,
        lung_crop=False,
    )


def region_estimate(
    predictor: RegionPredictor,
    box: CropBox,
    lung_mask: np.ndarray,
    spacing_zyx: Sequence[float],
    margin_mm: float,
    skip_tiles: bool,
    crop: bool = False,
) -> dict:
    """The sliding window's work in ``box`` (``skip_tiles``: only the tiles near the lungs count; ``crop``: over
    the lungs' grown box of the resampled ``box``)."""
    tiles = (
        predictor.tile_mask(lung_mask[box.slices], spacing_zyx, margin_mm, skip_tiles)
        if skip_tiles or crop
        else None
    )
    return predictor.work_estimate(box.size, spacing_zyx, tiles, crop=crop)


def choose_regions(
    predictor: RegionPredictor,
    lung_mask: np.ndarray,
    lung_labels: np.ndarray,
    spacing_zyx: Sequence[float],
    margin_mm: float,
    per_lung: bool | None,
    skip_tiles: bool,
    align: bool = False,
) -> tuple[list[CropBox], list[dict], str]:
    """(boxes, their work estimates, layout name): one box per lung or one around both, as asked, or (``per_lung``
    None) whichever costs fewer network passes; a tie goes to the single box (one resampling, no merge).
    ``align``: each box grown to the ends where its resampling samples as the whole CT's (:mod:`.grid`)."""
    layouts = {}
    for split in (False, True) if per_lung is None else (per_lung,):
        boxes = [
            predictor.aligned(b, spacing_zyx) if align else b
            for b in lung_crop_boxes(lung_labels, spacing_zyx, margin_mm, per_lung=split)
        ]
        layouts[split] = (
            boxes,
            [
                region_estimate(predictor, b, lung_mask, spacing_zyx, margin_mm, skip_tiles)
                for b in boxes
            ],
        )
    split = min(layouts, key=lambda k: (sum(e["network_passes"] for e in layouts[k][1]), k))
    boxes, estimates = layouts[split]
    name = "one box per lung" if len(boxes) > 1 else "one box around the lungs"
    if per_lung is None and len(layouts) > 1:
        cost = {k: sum(e["network_passes"] for e in v[1]) for k, v in layouts.items()}
        name += f" (fewer network passes: {cost[split]} vs {cost[not split]})"
    return boxes, estimates, name
