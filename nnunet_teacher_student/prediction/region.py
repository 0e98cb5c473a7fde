"""One inference engine for teachers and students: crop regions -> nnU-Net predictor -> paste back.

nnU-Net's ``nnUNetPredictor`` does the preprocessing (resampling, normalisation), the sliding
window with Gaussian weighting and test-time mirroring; this module only decides *where* it runs
(the regions) and puts the results back on the original voxel grid.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.devices import resolve_device
from ..core.errors import InputError
from ..lungs.cropping import CropBox
from ..nnunet.plans import ensure_ext_trainer_path
from .grid import align_box, resampled_length
from .tiles import TileMask, count_tiles, tile_skipping_predictor


def torch_device(name: str):
    """The ``torch.device`` of a device name (``auto`` resolved); an error for an unusable one."""
    import torch

    name = resolve_device(name)
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("-device cuda asked for, but no CUDA device is available")
    if name not in ("cpu", "cuda", "mps"):
        raise InputError(f"unknown device {name!r} (cpu, cuda, mps or auto)")
    return torch.device(name)


@dataclass
class RegionResult:
    """Prediction on the full grid: label map and foreground probability (0 outside all regions)."""

    segmentation: np.ndarray  # uint8 [z, y, x]
    probability: np.ndarray  # float32 [z, y, x], probability of the target label/region
    regions: list[CropBox]


TUMOUR_WORDS = ("tumor", "tumour", "lesion", "nodule", "gtv", "cancer")


def tumour_label(
    label_manager, labels: dict | None = None, label: int | None = None
) -> tuple[int, int]:
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
            raise InputError(
                f"label {label} is not a foreground label of the model (labels {foreground})"
            )
        return int(label), int(label)
    named = [
        int(v)
        for k, v in (labels or {}).items()
        if isinstance(v, int) and v in foreground and any(w in k.lower() for w in TUMOUR_WORDS)
    ]
    value = named[0] if len(named) == 1 else max(foreground)
    return value, value


class RegionPredictor:
    """A trained nnU-Net model folder (any trainer of ours or plain nnU-Net) ready to predict regions."""

    def __init__(
        self,
        model_folder: str | os.PathLike,
        folds: Sequence[int | str] | None = (0,),
        checkpoint: str = "checkpoint_final.pth",
        device: str = "cpu",
        tta: bool = True,
        step_size: float = 0.5,
        verbose: bool = False,
        progress: bool = False,
    ):
        ensure_ext_trainer_path()
        folder = Path(model_folder)
        if not (folder / "plans.json").is_file() or not (folder / "dataset.json").is_file():
            raise InputError(
                f"{folder}: not an nnU-Net model folder (needs plans.json, dataset.json, fold_X/)"
            )
        if (
            folds is None
        ):  # nnU-Net's own choice (every fold_X), made here so that none found is a clear error
            folds = sorted(
                (
                    p.name[len("fold_") :]
                    for p in folder.glob("fold_*")
                    if (p / checkpoint).is_file()
                ),
                key=lambda f: (f == "all", int(f) if f.isdigit() else 0),
            )
            if not folds:
                raise InputError(
                    f"{folder}: no fold_X/{checkpoint} in this model folder (train a fold first, "
                    "or pick -f/--checkpoint)"
                )
        folds = [f if f == "all" else int(f) for f in folds]
        for f in folds:
            ckpt = folder / f"fold_{f}" / checkpoint
            if not ckpt.is_file():
                raise InputError(
                    f"{ckpt}: checkpoint missing (train fold {f} first, or pick -f/--checkpoint)"
                )
        self.folder = folder
        self.checkpoint = checkpoint
        self.folds = folds
        self.predictor = tile_skipping_predictor(
            tile_step_size=step_size,
            use_gaussian=True,
            use_mirroring=tta,
            perform_everything_on_device=torch_device(device).type == "cuda",
            device=torch_device(device),
            verbose=verbose,
            verbose_preprocessing=False,
            allow_tqdm=progress,
        )
        try:
            self.predictor.initialize_from_trained_model_folder(
                str(folder), use_folds=folds, checkpoint_name=checkpoint
            )
        except (RuntimeError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as e:
            raise InputError(
                f"{folder}: cannot load the model (folds {folds}, {checkpoint}): "
                f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            ) from e

    @property
    def num_input_channels(self) -> int:
        return len(self.predictor.dataset_json["channel_names"])

    @property
    def patch_size_mm(self) -> np.ndarray:
        """Network patch in mm (z, y, x): the context the sliding window needs around a region (a 2-D
        configuration needs none across slices: z is 0)."""
        cm = self.predictor.configuration_manager
        mm = np.array(cm.patch_size, float) * np.array(cm.spacing, float)
        return np.concatenate([[0.0], mm]) if len(mm) == 2 else mm

    def patch_transposed(self) -> list[int]:
        """The sliding-window tile in nnU-Net's (transposed) axis order, 3 numbers (a 2-D configuration's tile
        is one slice of its first axis)."""
        patch = [int(p) for p in self.predictor.configuration_manager.patch_size]
        return [1, *patch] if len(patch) == 2 else patch

    def tumour(self, label: int | None = None) -> tuple[int, int]:
        """(value in the label map, probability channel) of the tumour (see :func:`tumour_label`)."""
        return tumour_label(
            self.predictor.label_manager, self.predictor.dataset_json.get("labels"), label
        )

    def spacing_factors(self, spacing_zyx: Sequence[float]) -> list[float]:
        """Per axis (z, y, x): a CT's spacing / the model's, as nnU-Net's ``compute_new_shape`` multiplies by."""
        pm, cm = self.predictor.plans_manager, self.predictor.configuration_manager
        forward = list(pm.transpose_forward)
        target = [float(t) for t in cm.spacing]  # in nnU-Net's (transposed) axis order
        if len(target) == 2:  # a 2-D configuration leaves its slicing axis as it is
            target.insert(0, float(spacing_zyx[forward[0]]))
        target = np.array(target)[np.argsort(forward)]
        return [float(s) / float(t) for s, t in zip(spacing_zyx, target)]

    def resampled_shape(
        self, shape_zyx: Sequence[int], spacing_zyx: Sequence[float]
    ) -> tuple[int, ...]:
        """The shape (z, y, x) nnU-Net's preprocessing resamples an array of ``shape_zyx`` at ``spacing_zyx`` to."""
        return tuple(
            max(1, resampled_length(int(n), f))
            for n, f in zip(shape_zyx, self.spacing_factors(spacing_zyx))
        )

    def aligned(self, box: CropBox, spacing_zyx: Sequence[float]) -> CropBox:
        """``box`` grown (a few voxels) so that its own resampling samples where the whole CT's does
        (:func:`.grid.align_box`)."""
        from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

        pm = self.predictor.plans_manager
        patch = [
            int(p) for p in np.array(self.patch_transposed())[np.argsort(pm.transpose_forward)]
        ]  # z, y, x
        step = self.predictor.tile_step_size

        def steps(p: int):
            return lambda m: len(compute_steps_for_sliding_window((max(m, p),), (p,), step)[0])

        return align_box(box, self.spacing_factors(spacing_zyx), steps=[steps(p) for p in patch])[0]

    def tile_mask(
        self, mask: np.ndarray, spacing_zyx: Sequence[float], margin_mm: float, skip: bool = True
    ) -> TileMask:
        """A :class:`TileMask` for an array of ``mask.shape``: tiles run within ``margin_mm`` of ``mask`` (``skip``
        False: all tiles; the mask then only gives the box that ``crop`` cuts out)."""
        tm = TileMask.around(mask, spacing_zyx, margin_mm)
        tm.skip = skip
        tm.expected_shape = self.resampled_shape(mask.shape, spacing_zyx)
        return tm

    def work_estimate(
        self,
        shape_zyx: Sequence[int],
        spacing_zyx: Sequence[float],
        tile_mask: TileMask | None = None,
        crop: bool = False,
    ) -> dict:
        """What the sliding window will do on an array of ``shape_zyx`` voxels at ``spacing_zyx`` mm: the shape
        after nnU-Net resamples it to the model's spacing, how many times more voxels that is, and the number of
        tiles (nnU-Net's own step computation; with ``tile_mask`` those it keeps, with ``crop`` over the mask's
        grown box of the resampled array only; times the mirrorings with test-time augmentation)."""
        pm = self.predictor.plans_manager
        resampled = self.resampled_shape(shape_zyx, spacing_zyx)
        axes = list(pm.transpose_forward)
        shape_t = [resampled[a] for a in axes]
        kept, tiles = count_tiles(
            shape_t,
            self.patch_transposed(),
            self.predictor.tile_step_size,
            tile_mask.transposed(axes) if tile_mask is not None else None,
            crop=crop and tile_mask is not None,
        )
        mirror = self.predictor.allowed_mirroring_axes if self.predictor.use_mirroring else None
        per_tile = 2 ** len(mirror) if mirror else 1
        return {
            "resampled_shape": list(resampled),
            "voxel_factor": float(np.prod(resampled) / max(1, np.prod(shape_zyx))),
            "tiles": tiles,
            "tiles_run": kept,
            "network_passes": kept * per_tile,
        }

    def predict_array(
        self,
        channels: np.ndarray,
        spacing_zyx: Sequence[float],
        label: int | None = None,
        tile_mask: TileMask | None = None,
        crop: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``channels`` ``[c, z, y, x]`` float32 -> (label map, target probability, all probabilities).
        ``tile_mask`` (on the grid of ``channels``): only the sliding-window tiles near it run; the rest is
        background; ``crop``: the sliding window runs over the mask's grown box of nnU-Net's resampled array."""
        if channels.ndim != 4 or channels.shape[0] != self.num_input_channels:
            raise InputError(
                f"model {self.folder} expects {self.num_input_channels} input channel(s), "
                f"got array of shape {channels.shape}"
            )
        if tile_mask is not None and tile_mask.mask.shape != channels.shape[1:]:
            raise InputError(
                f"tile mask of shape {tile_mask.mask.shape} for an array of {channels.shape[1:]}"
            )
        self.predictor.tile_mask = (
            None
            if tile_mask is None
            else tile_mask.transposed(list(self.predictor.plans_manager.transpose_forward))
        )
        self.predictor.crop = crop
        try:
            seg, probs = self.predictor.predict_single_npy_array(
                np.ascontiguousarray(channels, dtype=np.float32),
                {"spacing": [float(s) for s in spacing_zyx]},
                None,
                None,
                True,
            )
        finally:
            self.predictor.tile_mask, self.predictor.crop = None, False
        return (
            np.asarray(seg).astype(np.uint8),
            np.asarray(probs[self.tumour(label)[1]], np.float32),
            np.asarray(probs, np.float32),
        )

    def predict_regions(
        self,
        channels: np.ndarray,
        spacing_zyx: Sequence[float],
        regions: Sequence[CropBox],
        label: int | None = None,
    ) -> RegionResult:
        """Predict each region of ``channels`` and paste into full-size arrays (regions must not overlap;
        see :func:`merge_overlapping`)."""
        shape = channels.shape[1:]
        seg = np.zeros(shape, np.uint8)
        prob = np.zeros(shape, np.float32)
        for region in regions:
            s, p, _ = self.predict_array(region.crop_array(channels), spacing_zyx, label)
            seg[region.slices] = s
            prob[region.slices] = p
        return RegionResult(seg, prob, list(regions))


def merge_overlapping(boxes: Sequence[CropBox]) -> list[CropBox]:
    """Replace overlapping boxes by their common bounding box until none overlap."""
    out = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if all(
                    max(a0, b0) < min(a1, b1)
                    for a0, a1, b0, b1 in zip(a.start, a.stop, b.start, b.stop)
                ):
                    start = tuple(min(x, y) for x, y in zip(a.start, b.start))
                    stop = tuple(max(x, y) for x, y in zip(a.stop, b.stop))
                    out[i] = CropBox(start, stop, a.shape, a.name)
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return out


def grow_box(
    start: Sequence[int],
    stop: Sequence[int],
    shape: Sequence[int],
    margin_vox: Sequence[int],
    name: str,
) -> CropBox:
    """Box ``[start, stop)`` grown by ``margin_vox`` per axis and clipped to ``shape``."""
    lo = [max(0, int(a) - int(m)) for a, m in zip(start, margin_vox)]
    hi = [min(int(n), int(b) + int(m)) for b, n, m in zip(stop, shape, margin_vox)]
    return CropBox(tuple(lo), tuple(hi), tuple(int(n) for n in shape), name)
