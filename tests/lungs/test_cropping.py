"""Crop boxes: margins, per-lung boxes, and exact crop/paste round trips on oblique grids."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings, strategies as st

from nnunet_teacher_student.lungs.cropping import (
    CropBox,
    box_around,
    crop_image,
    lung_crop_boxes,
    paste_image,
)
from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.core.geometry import Geometry


def oblique_image(shape_zyx=(12, 20, 24), components: int = 1, seed: int = 0) -> sitk.Image:
    """Random image on a rotated (non-axis-aligned) anisotropic grid with a non-zero origin."""
    rng = np.random.default_rng(seed)
    shape = shape_zyx + ((components,) if components > 1 else ())
    image = sitk.GetImageFromArray(
        rng.integers(-1000, 1000, shape).astype(np.int16), isVector=components > 1
    )
    a, b = 0.4, -0.3
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    image.SetDirection(tuple((rz @ rx).ravel()))
    image.SetSpacing((0.7, 0.9, 2.5))
    image.SetOrigin((-120.3, 45.1, 300.7))
    return image


def test_cropbox_dict_roundtrip_and_validation():
    box = CropBox((1, 2, 3), (5, 6, 7), (10, 10, 10), "right")
    assert CropBox.from_dict(json.loads(json.dumps(box.to_dict()))) == box
    assert box.size == (4, 4, 4)
    for bad in (
        {"start": [0, 0, 0], "stop": [0, 5, 5], "shape": [5, 5, 5]},  # empty
        {"start": [0, 0, 0], "stop": [6, 5, 5], "shape": [5, 5, 5]},  # outside
        {"start": [0, 0], "stop": [5, 5], "shape": [5, 5]},  # 2-D
        {"start": [0, 0, 0], "stop": [5, 5, 5]},
    ):  # no shape
        with pytest.raises(InputError):
            CropBox.from_dict(bad)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_crop_then_paste_is_exact(data):
    shape = tuple(data.draw(st.integers(1, 9)) for _ in range(3))
    start = tuple(data.draw(st.integers(0, n - 1)) for n in shape)
    stop = tuple(data.draw(st.integers(a + 1, n)) for a, n in zip(start, shape))
    box = CropBox(start, stop, shape)
    full = np.random.default_rng(0).normal(size=(2,) + shape).astype(np.float32)  # channels first
    cropped = box.crop_array(full)
    assert cropped.shape == (2,) + box.size
    pasted = box.paste_array(cropped, fill=np.nan)
    inside = np.zeros(shape, bool)
    inside[box.slices] = True
    np.testing.assert_array_equal(pasted[:, inside], full[:, inside])
    assert np.isnan(pasted[:, ~inside]).all()
    np.testing.assert_array_equal(box.crop_array(pasted), cropped)


def test_array_shape_checks():
    box = CropBox((0, 0, 0), (2, 2, 2), (4, 4, 4))
    with pytest.raises(InputError):
        box.crop_array(np.zeros((4, 4, 5)))
    with pytest.raises(InputError):
        box.paste_array(np.zeros((3, 2, 2)))


def test_margin_in_mm_rounds_up_and_clips():
    mask = np.zeros((30, 40, 50), np.uint8)
    mask[10:20, 5:30, 20:41] = 1
    box = box_around(mask, spacing_zyx=(2.5, 0.8, 0.8), margin_mm=10)
    # 10 mm = 4 slices of 2.5 mm, 12.5 -> 13 pixels of 0.8 mm; clipped to the image in y and x
    assert box.start == (6, 0, 7) and box.stop == (24, 40, 50)
    assert box_around(mask, (2.5, 0.8, 0.8), margin_mm=0).start == (10, 5, 20)
    with pytest.raises(InputError, match="empty"):
        box_around(np.zeros((3, 3, 3)), (1, 1, 1))


def test_lung_crop_boxes_labels_and_binary():
    labels = np.zeros((20, 30, 40), np.uint8)
    labels[2:18, 5:25, 3:15] = 1  # right lung (low x)
    labels[4:16, 6:24, 22:36] = 2  # left lung
    spacing = (2.0, 1.0, 1.0)
    (both,) = lung_crop_boxes(labels, spacing, margin_mm=2)
    assert (both.start, both.stop) == ((1, 3, 1), (19, 27, 38))
    right, left = lung_crop_boxes(labels, spacing, margin_mm=2, per_lung=True)
    assert (right.name, right.start, right.stop) == ("right", (1, 3, 1), (19, 27, 17))
    assert (left.name, left.start, left.stop) == ("left", (3, 4, 20), (17, 26, 38))
    # a binary mask is split into its two largest components, ordered along x
    binary = (labels > 0).astype(np.uint8)
    binary[0, 0, 39] = 1  # a speck is not a lung
    first, second = lung_crop_boxes(binary, spacing, margin_mm=2, per_lung=True)
    assert (first.start, first.stop, second.start, second.stop) == (
        right.start,
        right.stop,
        left.start,
        left.stop,
    )
    with pytest.raises(InputError, match="empty"):
        lung_crop_boxes(np.zeros_like(labels), spacing, per_lung=True)


@pytest.mark.parametrize("components", [1, 3])
def test_crop_image_keeps_physical_position_and_pastes_back_exactly(components):
    image = oblique_image(components=components)
    box = CropBox((3, 4, 5), (9, 17, 20), (12, 20, 24))
    cropped = crop_image(image, box)
    assert cropped.GetSize() == box.size[::-1]
    assert Geometry.of(cropped).matches(box.geometry(Geometry.of(image)), tol=1e-9)
    # every crop voxel sits where the original voxel of the same value sits
    for idx in [(0, 0, 0), (14, 12, 5), (7, 3, 2)]:
        orig = tuple(i + s for i, s in zip(idx, box.start[::-1]))
        np.testing.assert_allclose(
            cropped.TransformIndexToPhysicalPoint(idx),
            image.TransformIndexToPhysicalPoint(orig),
            atol=1e-9,
        )
        assert cropped[idx] == image[orig]
    back = paste_image(cropped, box, image, fill=-1024)
    assert Geometry.of(back) == Geometry.of(image)
    assert back.GetNumberOfComponentsPerPixel() == components
    expected = np.full_like(sitk.GetArrayFromImage(image), -1024)
    expected[box.slices] = sitk.GetArrayFromImage(image)[box.slices]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), expected)
    full = CropBox((0, 0, 0), (12, 20, 24), (12, 20, 24))
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(paste_image(crop_image(image, full), full, image)),
        sitk.GetArrayFromImage(image),
    )


def test_paste_refuses_a_crop_of_another_box_or_image():
    image = oblique_image()
    box = CropBox((3, 4, 5), (9, 17, 20), (12, 20, 24))
    shifted = CropBox((4, 4, 5), (10, 17, 20), (12, 20, 24))
    with pytest.raises(InputError, match="geometry mismatch"):
        paste_image(crop_image(image, shifted), box, image)
    with pytest.raises(InputError):
        crop_image(oblique_image(shape_zyx=(12, 20, 25)), box)
