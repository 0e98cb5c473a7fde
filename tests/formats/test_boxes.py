"""Axial boxes: properties (hypothesis) and validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from nnunet_teacher_student.formats.annotator import Annotator
from nnunet_teacher_student.formats.boxes import (
    Box,
    BoxError,
    BoxSet,
    box_mask,
    boxes_from_box_mask,
    boxes_from_mask,
    load_box_mask,
)
from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.core.geometry import Geometry

masks = arrays(
    np.uint8,
    st.tuples(st.integers(1, 5), st.integers(1, 12), st.integers(1, 12)),
    elements=st.integers(0, 1),
)


def geometry_for(shape_zyx) -> Geometry:
    return Geometry(
        tuple(shape_zyx[::-1]), (0.7, 0.7, 2.5), (-10.0, 5.0, 100.0), (1, 0, 0, 0, 1, 0, 0, 0, 1)
    )


@given(masks, st.sampled_from(["lesion", "component2d", "lesion3d"]))
def test_every_mask_voxel_lies_in_a_box_of_its_slice(mask, mode):
    boxes = boxes_from_mask(mask, mode=mode)
    covered = box_mask(boxes, mask.shape)
    assert not (mask.astype(bool) & ~covered.astype(bool)).any()
    assert all(b.slice in set(np.flatnonzero(mask.any(axis=(1, 2)))) for b in boxes)


@given(masks, st.sampled_from(["lesion", "component2d"]))
def test_boxes_are_tight_without_jitter(mask, mode):
    for b in boxes_from_mask(mask, mode=mode):
        inside = mask[b.slice, b.ymin : b.ymax + 1, b.xmin : b.xmax + 1]
        assert (
            inside[0, :].any()
            and inside[-1, :].any()
            and inside[:, 0].any()
            and inside[:, -1].any()
        )


@given(masks, st.integers(0, 3), st.integers(0, 2**31 - 1))
def test_mask_to_boxes_to_json_to_boxes_is_identity(tmp_path_factory, mask, voxels, seed):
    boxes = boxes_from_mask(mask, seed=seed, label="A", annotator=Annotator.stress(voxels))
    path = tmp_path_factory.mktemp("b") / "case.json"
    BoxSet(geometry_for(mask.shape), boxes).save(path)
    loaded = BoxSet.load(path)
    assert loaded.boxes == boxes
    assert [(b.label, b.lesion_id) for b in loaded.boxes] == [(b.label, b.lesion_id) for b in boxes]
    assert loaded.geometry == geometry_for(mask.shape)


@settings(max_examples=50)
@given(masks)
def test_box_mask_round_trip_is_exact(mask):
    """mask -> boxes -> mask is the identity for any binary mask (overlaps become row-run rectangles)."""
    assert np.array_equal(box_mask(boxes_from_box_mask(mask), mask.shape), mask)


def test_disjoint_boxes_survive_mask_round_trip():
    boxes = [Box(0, 1, 1, 3, 2), Box(0, 6, 6, 8, 9), Box(2, 0, 0, 0, 0)]
    assert boxes_from_box_mask(box_mask(boxes, (3, 10, 10))) == sorted(boxes)


def test_stress_boxes_are_seeded_and_bounded():
    mask = np.zeros((4, 30, 30), np.uint8)
    mask[1:3, 10:20, 8:15] = 1
    a = boxes_from_mask(mask, seed=5, annotator=Annotator.stress(2))
    assert a == boxes_from_mask(mask, seed=5, annotator=Annotator.stress(2))
    assert a != boxes_from_mask(mask, seed=6, annotator=Annotator.stress(2))
    tight = boxes_from_mask(mask)
    for j, t in zip(a, tight):
        assert (
            max(
                abs(j.xmin - t.xmin),
                abs(j.xmax - t.xmax),
                abs(j.ymin - t.ymin),
                abs(j.ymax - t.ymax),
            )
            <= 2
        )


def test_lesion3d_gives_one_extent_per_lesion():
    mask = np.zeros((3, 10, 10), np.uint8)
    mask[0, 2:4, 2:4] = 1
    mask[1, 3:7, 1:3] = 1
    boxes = boxes_from_mask(mask, mode="lesion3d")
    assert {(b.xmin, b.ymin, b.xmax, b.ymax) for b in boxes} == {(1, 2, 3, 6)}
    assert [b.slice for b in boxes] == [0, 1]


@pytest.mark.parametrize(
    "box, message",
    [
        (Box(0, 5, 1, 4, 2), "inverted"),
        (Box(0, 0, 0, 10, 2), "outside"),
        (Box(7, 0, 0, 1, 1), "slice 7"),
        (Box(0, -1, 0, 1, 1), "outside"),
    ],
)
def test_invalid_boxes_are_refused_with_the_file_named(tmp_path, box, message):
    path = tmp_path / "c.json"
    with pytest.raises(BoxError, match=message):
        BoxSet(geometry_for((3, 10, 10)), [box]).save(path)
    assert not path.exists()
    data = {
        "format": "nnts-axial-boxes",
        "version": 1,
        "geometry": geometry_for((3, 10, 10)).to_dict(),
        "boxes": [box.to_dict()],
    }
    path.write_text(json.dumps(data))
    with pytest.raises(BoxError, match=str(path)):
        BoxSet.load(path)


def test_corrupt_box_file_and_mask_mismatch(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BoxError, match="not valid JSON"):
        BoxSet.load(bad)
    ct = sitk.Image(10, 10, 3, sitk.sitkInt16)
    bs = BoxSet(geometry_for((3, 10, 10)), [Box(0, 1, 1, 2, 2)])
    with pytest.raises(InputError, match="geometry mismatch"):
        bs.check_against(ct, "boxes.json")
    img = sitk.GetImageFromArray(np.full((3, 10, 10), 2, np.uint8))
    sitk.WriteImage(img, str(tmp_path / "m.nii.gz"))
    with pytest.raises(BoxError, match="only 0 and 1"):
        load_box_mask(tmp_path / "m.nii.gz")


def test_box_files_follow_the_shipped_json_schema_and_mistakes_are_explained(tmp_path):
    import json
    from pathlib import Path

    import jsonschema

    from nnunet_teacher_student.formats.boxes import SCHEMA, Box, BoxError, BoxSet
    from nnunet_teacher_student.core.geometry import Geometry

    schema = json.loads(SCHEMA.read_text())
    example = Path(__file__).resolve().parents[2] / "examples" / "boxes_example.json"
    jsonschema.validate(json.loads(example.read_text()), schema)  # the README's example
    loaded = BoxSet.load(example)
    assert len(loaded.boxes) == 4 and {b.lesion_id for b in loaded.boxes} == {1, 2}
    ours = BoxSet(
        Geometry((30, 20, 8), (0.8, 0.8, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1)),
        [Box(3, 2, 2, 9, 9, label="tumor", lesion_id=1), Box(4, 1, 1, 5, 5)],
    )
    jsonschema.validate(json.loads(ours.to_json()), schema)  # what nnts writes
    flat = json.loads(example.read_text())
    flat.update(flat.pop("geometry"))  # geometry keys at the top level
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(flat, schema)
    (tmp_path / "flat.json").write_text(json.dumps(flat))
    with pytest.raises(
        BoxError, match=r"flat.json: missing key 'geometry'.*belong inside 'geometry'.*schema"
    ):
        BoxSet.load(tmp_path / "flat.json")


def test_a_noisy_3d_box_is_one_drawing_per_lesion():
    """With the annotator model a lesion's 3-D box moves once: the same in-plane edges on every slice it spans."""
    from nnunet_teacher_student.formats.annotator import Annotator

    mask = np.zeros((12, 40, 40), np.uint8)
    mask[2:9, 5:15, 6:18] = 1
    mask[3:6, 25:35, 22:30] = 1
    noisy = Annotator(exact_share=0.0, skip_ends=0.5)
    moved_any = False
    for seed in range(20):
        boxes = boxes_from_mask(mask, mode="lesion3d", seed=seed, annotator=noisy)
        by_lesion = {}
        for b in boxes:
            by_lesion.setdefault(b.lesion_id, set()).add((b.xmin, b.ymin, b.xmax, b.ymax))
        assert all(len(v) == 1 for v in by_lesion.values()), seed
        tight = {
            b.lesion_id: (b.xmin, b.ymin, b.xmax, b.ymax)
            for b in boxes_from_mask(mask, mode="lesion3d")
        }
        moved_any |= any(v != {tight[k]} for k, v in by_lesion.items())
        assert 7 + 3 - 4 <= len(boxes) <= 7 + 3  # only end slices may be left out
    assert moved_any
