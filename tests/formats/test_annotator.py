"""The annotator model: fractional edge noise that never loses a lesion, exact share, skipped ends, stress setting."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings, strategies as st

from nnunet_teacher_student.formats.annotator import Annotator, annotator_from, refuse_jitter
from nnunet_teacher_student.formats.boxes import box_mask, boxes_from_mask
from nnunet_teacher_student.core.components import label_components
from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.phantom.cases import generate_case


def _blobs(seed: int, shape=(12, 40, 40)) -> np.ndarray:
    """1-3 random ellipsoids, 2-9 voxels in radius."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    mask = np.zeros(shape, bool)
    for _ in range(int(rng.integers(1, 4))):
        c = rng.uniform([2, 8, 8], [shape[0] - 2, shape[1] - 8, shape[2] - 8])
        r = rng.uniform([1, 2, 2], [4, 9, 9])
        mask |= (
            ((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2
        ) <= 1
    return mask


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_default_boxes_always_overlap_their_lesion(mask_seed, box_seed):
    mask = _blobs(mask_seed)
    labels, _ = label_components(mask)
    spacing = (2.0, 0.7, 0.7)
    boxes = boxes_from_mask(mask, seed=box_seed, annotator=Annotator(), spacing_zyx=spacing)
    tight = boxes_from_mask(mask)
    assert len(boxes) == len(tight)
    for b in boxes:
        region = labels[b.slice, b.ymin : b.ymax + 1, b.xmin : b.xmax + 1]
        assert (region == b.lesion_id).any(), f"box {b} lost its lesion"


def test_default_boxes_cover_at_least_95_percent_of_the_tumour_on_average():
    coverages, moved = [], 0
    for seed in range(40):
        case = generate_case(seed, ("msd", "nsclc", "lpcd")[seed % 3], preset="tiny", min_tumours=1)
        label = sitk.GetArrayFromImage(case.label) > 0
        if (
            not label.any()
        ):  # every tumour dropped as too small (write_phantom_datasets redraws such cases)
            continue
        spacing = case.ct.GetSpacing()[::-1]
        boxes = boxes_from_mask(label, seed=seed, annotator=Annotator(), spacing_zyx=spacing)
        moved += sum(b != t for b, t in zip(boxes, boxes_from_mask(label)))
        bm = box_mask(boxes, label.shape) > 0
        coverages.append((label & bm).sum() / label.sum())
    print(
        f"mean coverage {np.mean(coverages):.3f}, min {np.min(coverages):.3f}, boxes moved {moved}"
    )
    assert np.mean(coverages) >= 0.95
    assert moved > 0, "the default model must add noise"


def test_exact_share_and_stress_and_skipped_ends():
    mask = _blobs(3, (20, 40, 40))
    tight = boxes_from_mask(mask)
    assert boxes_from_mask(mask, seed=1, annotator=Annotator.exact()) == tight
    all_exact = boxes_from_mask(
        mask, seed=1, annotator=Annotator(edge_fraction=0.3, exact_share=1.0)
    )
    assert all_exact == tight
    stressed = boxes_from_mask(mask, seed=1, annotator=Annotator.stress(2))
    d = np.array(
        [
            [s.xmin - t.xmin, s.ymin - t.ymin, s.xmax - t.xmax, s.ymax - t.ymax]
            for s, t in zip(stressed, tight)
        ]
    )
    assert np.abs(d).max() <= 2 and np.abs(d).max() > 0
    skipped = boxes_from_mask(mask, seed=1, annotator=Annotator(skip_ends=1.0))
    per_lesion = {}
    for b in tight:
        per_lesion.setdefault(b.lesion_id, []).append(b.slice)
    expected = sum(len(z) - (2 if len(z) >= 3 else 0) for z in per_lesion.values())
    assert len(skipped) == expected


def test_annotator_specs_and_errors():
    assert Annotator.parse("default") == Annotator()
    assert Annotator.parse("exact").is_exact
    assert Annotator.parse("voxels=2") == Annotator.stress(2)
    a = Annotator.parse("edge_fraction=0.2,exact_share=0.5")
    assert a.edge_fraction == 0.2 and a.exact_share == 0.5
    assert Annotator.from_dict(a.to_dict()) == a
    assert annotator_from(None) == Annotator()
    assert annotator_from("voxels=2") == Annotator.stress(2)
    assert annotator_from("exact").is_exact
    refuse_jitter(0, "old.toml")  # the removed jitter: 0 meant the annotator model, as now
    with pytest.raises(InputError, match=r"old\.toml: jitter = 2 was removed.*voxels=2"):
        refuse_jitter(2, "old.toml")
    with pytest.raises(InputError, match="unknown annotator setting"):
        Annotator.parse("edge=0.1")
    with pytest.raises(InputError, match="edge_fraction"):
        Annotator.parse("edge_fraction=0.9")
