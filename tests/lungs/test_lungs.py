"""Lung masks: classical method on synthetic chests, lungmask R231 offline with a random state dict, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_teacher_student.lungs import mask as lungs
from nnunet_teacher_student.cli import main as nnts
from nnunet_teacher_student.lungs.cropping import crop_image, lung_crop_boxes, paste_image
from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.core.geometry import Geometry, spacing_zyx

FLIP_XZ = (-1, 0, 0, 0, 1, 0, 0, 0, -1)
IDENTITY = (1, 0, 0, 0, 1, 0, 0, 0, 1)


def _segment_distance(p: np.ndarray, a, b) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    t = np.clip(((p - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
    return np.linalg.norm(p - (a + t[..., None] * (b - a)), axis=-1)


def synthetic_chest(
    size_xyz=(112, 96, 40),
    spacing=(3.2, 3.2, 5.0),
    direction=IDENTITY,
    noise=20.0,
    seed=0,
    tumour_side="lateral",
    join_lungs=False,
    body_shift_x=0.0,
):
    """A chest CT in LPS millimetres centred on 0, and its truth masks [z, y, x].

    Body ellipse (40 HU) in air (-1000); two lung ellipsoids (-850; right lung at -x); a trachea (-1000)
    from the top of the volume down to two bronchi entering the lungs; a tumour sphere (30 HU) inside
    the right lung touching its lateral (or medial) wall, i.e. a juxtapleural tumour, or ("apex") a large
    mass filling the right lung's apex.
    """
    ref = sitk.Image([int(s) for s in size_xyz], sitk.sitkInt16)
    ref.SetSpacing(spacing)
    ref.SetDirection(direction)
    d = np.array(direction, float).reshape(3, 3)
    ref.SetOrigin(tuple(-d @ ((np.array(size_xyz) - 1) / 2 * np.array(spacing))))
    k, j, i = np.meshgrid(*[np.arange(n) for n in size_xyz[::-1]], indexing="ij")
    p = (np.stack([i, j, k], -1) * np.array(spacing)) @ d.T + np.array(ref.GetOrigin())
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    cx = 49.0 if join_lungs else 70.0
    body = ((x - body_shift_x) / 160) ** 2 + (y / 120) ** 2 < 1
    right = ((x + cx) / 50) ** 2 + ((y - 10) / 75) ** 2 + (z / 80) ** 2 < 1
    left = ((x - cx) / 50) ** 2 + ((y - 10) / 75) ** 2 + (z / 80) ** 2 < 1
    trachea = (_segment_distance(p, (0, -20, 300), (0, -20, 25)) < 10) & body
    bronchi = (_segment_distance(p, (0, -20, 25), (-45, 0, 5)) < 6) | (
        _segment_distance(p, (0, -20, 25), (45, 0, 5)) < 6
    )
    r = 18.0
    if (
        tumour_side == "whole"
    ):  # a tumour (or collapse) that has replaced the whole right lung: no air left
        tumour = right.copy()
    elif (
        tumour_side == "apex"
    ):  # a large mass filling the lung's apex: a sphere on it, clipped to the lung
        tumour = (np.linalg.norm(p - np.array([-cx, 10, 80]), axis=-1) < 35) & right
    else:
        centre = [-(cx + 50) + r, 10, 0] if tumour_side == "lateral" else [-(cx - 50) - r, 10, 0]
        tumour = np.linalg.norm(p - np.array(centre), axis=-1) < r
    hu = np.full(x.shape, -1000.0)
    hu[body] = 40
    hu[right | left] = -850
    hu[(trachea | bronchi) & body] = -1000
    hu[tumour] = 30
    hu += np.random.default_rng(seed).normal(0, noise, hu.shape)
    ct = sitk.GetImageFromArray(np.round(hu).astype(np.int16))
    ct.CopyInformation(ref)
    return ct, {"body": body, "right": right, "left": left, "trachea": trachea, "tumour": tumour}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.fixture
def no_env_weights(monkeypatch):
    monkeypatch.delenv(lungs.ENV_WEIGHTS, raising=False)


# --------------------------------------------------------------------------- classical
CORONAL = (1, 0, 0, 0, 0, -1, 0, 1, 0)  # slices are coronal: index j runs along z, k along -y


@pytest.mark.parametrize(
    "tumour_side,direction",
    [("lateral", IDENTITY), ("medial", IDENTITY), ("lateral", FLIP_XZ), ("medial", CORONAL)],
)
def test_classical_region_keeps_juxtapleural_tumour(direction, tumour_side, no_env_weights):
    grid = {"size_xyz": (112, 40, 96), "spacing": (3.2, 5.0, 3.2)} if direction == CORONAL else {}
    ct, truth = synthetic_chest(direction=direction, tumour_side=tumour_side, **grid)
    result = lungs.lung_mask(ct)
    assert result.method == "classical"
    assert "classical" in result.message and lungs.ENV_WEIGHTS in result.message  # says why
    assert (
        result.mask.shape == result.labels.shape == truth["body"].shape
        and result.mask.dtype == np.uint8
    )
    # the threshold alone cuts the tumour out; the region keeps it
    assert (result.raw_labels > 0)[truth["tumour"]].mean() < 0.1
    assert result.mask[truth["tumour"]].mean() > 0.97
    assert result.labels[truth["tumour"]].max() == lungs.RIGHT
    # both lungs, labelled right (patient's right, -x) = 1 and left = 2 whatever the direction matrix;
    # the region is a little larger than the lungs (hull, plus one 3.2 mm voxel to reach the pleura)
    for label, lung in ((lungs.RIGHT, truth["right"]), (lungs.LEFT, truth["left"])):
        region = result.labels == label
        assert region[lung].mean() > 0.99
        assert dice(region, lung) > 0.9
    assert not result.mask[~truth["body"]].any()  # air outside the body removed
    assert result.mask[truth["trachea"]].mean() < 0.1  # trachea removed
    assert "airways removed" in result.message


def test_mass_filling_the_apex_is_recovered_from_the_other_side(no_env_weights):
    ct, truth = synthetic_chest(tumour_side="apex")
    result = lungs.lung_mask(ct)
    tumour = truth["tumour"]
    assert (result.raw_labels > 0)[tumour].mean() < 0.1
    hull_only = lungs.lung_region(
        result.raw_labels, mirror=False
    )  # identity direction: LPS = array order
    assert (hull_only > 0)[tumour].mean() < 0.8  # no hull of the remaining air reaches the apex
    assert result.mask[tumour].mean() > 0.99  # the mirrored left lung does
    assert set(np.unique(result.labels[tumour])) == {lungs.RIGHT}
    assert not result.mask[~truth["body"]].any()


def test_lung_replaced_by_tumour_is_mirrored_from_the_other(no_env_weights):
    ct, truth = synthetic_chest(tumour_side="whole", body_shift_x=6.0)
    result = lungs.lung_mask(ct)
    tumour = truth["tumour"]
    assert not (
        result.raw_labels == lungs.RIGHT
    ).any()  # no air on the right: the threshold finds one lung
    assert (lungs.lung_region(result.raw_labels, body=truth["body"], mirror=False) > 0)[
        tumour
    ].mean() < 0.01
    # the left lung mirrored about the body's midline (6 mm off the lungs' own) covers most of the right,
    # and the crop box with its 10 mm margin all of it
    assert (result.labels == lungs.RIGHT)[tumour].mean() > 0.8
    covered = np.zeros(tumour.shape, bool)
    for box in lung_crop_boxes(result.labels, ct.GetSpacing()[::-1], 10.0, per_lung=True):
        covered[box.slices] = True
    assert covered[tumour].all()
    assert (
        dice(result.labels == lungs.LEFT, truth["left"]) > 0.85
    )  # the left lung's own region is kept
    assert "no right lung found" in result.message
    assert not result.mask[~truth["body"]].any()


def test_joined_lungs_are_split(no_env_weights):
    ct, truth = synthetic_chest(join_lungs=True)
    result = lungs.lung_mask(ct, method="classical")
    assert "joined lungs" in result.message
    assert dice(result.labels == lungs.RIGHT, truth["right"] & ~truth["left"]) > 0.9
    assert dice(result.labels == lungs.LEFT, truth["left"] & ~truth["right"]) > 0.9
    # they do touch: one component at the threshold
    assert dice(result.raw_labels > 0, truth["right"] | truth["left"]) > 0.9


def test_rejects_ct_not_in_hu(no_env_weights):
    ct, _ = synthetic_chest(size_xyz=(48, 40, 10), spacing=(8.0, 8.0, 20.0))
    with pytest.raises(InputError, match="Hounsfield"):
        lungs.lung_mask(ct + 1024)


# --------------------------------------------------------------------------- method choice
def test_weights_choice(tmp_path, monkeypatch, no_env_weights):
    small, _ = synthetic_chest(size_xyz=(48, 40, 10), spacing=(8.0, 8.0, 20.0))
    with pytest.raises(InputError, match="not found"):
        lungs.lung_mask(small, weights=tmp_path / "missing.pth")
    with pytest.raises(InputError, match="never downloaded"):
        lungs.lung_mask(small, method="lungmask")
    monkeypatch.setenv(lungs.ENV_WEIGHTS, str(tmp_path / "missing.pth"))
    result = lungs.lung_mask(small)
    assert result.method == "classical" and "is not a file" in result.message
    weights = tmp_path / "r231.pth"
    weights.write_bytes(b"not a torch file")
    monkeypatch.setenv(lungs.ENV_WEIGHTS, str(weights))
    assert lungs.resolve_weights(None)[0] == weights
    with pytest.raises(InputError, match="cannot read lungmask weights"):
        lungs.lung_mask(small)  # env var with an existing file selects lungmask
    import torch

    torch.save({"last.bias": torch.zeros(6)}, weights)
    with pytest.raises(InputError, match="3 classes"):
        lungs.lung_mask(small, weights=weights)


def test_importing_lungmask_keeps_warning_filters():
    code = (
        "import sys, warnings\n"
        "from nnunet_teacher_student.lungs.mask import import_lungmask\n"
        "before = list(warnings.filters)\n"
        "import_lungmask()\n"
        "assert 'lungmask.mask' in sys.modules\n"
        "added = [f for f in warnings.filters if f not in before]\n"
        "assert all(f in warnings.filters for f in before), 'filters removed'\n"
        "blanket = [f for f in added if f[0] == 'ignore' and f[1] is None and f[3] is None\n"
        "           and issubclass(UserWarning, f[2])]\n"
        "assert not blanket, blanket\n"
        "warnings.warn('still-visible', UserWarning)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "UserWarning: still-visible" in done.stderr


# --------------------------------------------------------------------------- lungmask, offline
def test_lungmask_r231_runs_offline_from_local_weights(tmp_path, monkeypatch, no_env_weights):
    import torch

    lm = lungs.import_lungmask()

    def no_download(*args, **kwargs):
        raise AssertionError("lungmask tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    torch.manual_seed(0)
    # R231 network exactly as lungmask.mask.get_model builds it; random weights, with the last layer
    # set to predict class 1 so that lungmask's output (inside its body crop) is not empty
    net = lm.UNet(
        n_classes=3, padding=True, depth=5, up_mode="upsample", batch_norm=True, residual=False
    )
    with torch.no_grad():
        net.last.weight.zero_()
        net.last.bias.copy_(torch.tensor([0.0, 1.0, 0.0]))
    weights = tmp_path / "r231_random.pth"
    torch.save(net.state_dict(), weights)

    # 2 slices of 64 x 64 (lungmask resizes each slice to 256 x 256); body shifted to the patient's
    # left and an x/z-flipped direction, so a wrong orientation round trip would mirror the output
    ct, truth = synthetic_chest(
        size_xyz=(64, 64, 2), spacing=(7.0, 7.0, 20.0), direction=FLIP_XZ, body_shift_x=60.0
    )
    result = lungs.lung_mask(ct, weights=weights, method="lungmask", force_cpu=True)
    assert result.method == "lungmask-R231"
    assert str(weights) in result.message
    assert result.labels.shape == result.raw_labels.shape == tuple(ct.GetSize()[::-1])
    raw = result.raw_labels > 0
    assert raw.any()
    # lungmask labels its crop around the body: the output must sit on the body on the CT's own grid
    body = truth["body"]
    assert np.count_nonzero(raw & body) / np.count_nonzero(body) > 0.9
    assert np.count_nonzero(raw & ~body) < 0.2 * np.count_nonzero(raw)
    image = result.to_image(ct)
    assert Geometry.of(image).matches(Geometry.of(ct))


# --------------------------------------------------------------------------- CLI and cropping
def test_cli_writes_region_in_ct_geometry(tmp_path, capsys, no_env_weights):
    ct, truth = synthetic_chest(direction=FLIP_XZ)
    ct.SetOrigin((12.5, -40.0, 300.0))
    ct_path, out = tmp_path / "ct.nii.gz", tmp_path / "lungs.nii.gz"
    sitk.WriteImage(ct, str(ct_path))
    assert (
        nnts(
            ["lungs", "-i", str(ct_path), "-o", str(out), "--boxes-json", str(tmp_path / "b.json")]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "method: classical" in printed and "crop right" in printed
    written = sitk.ReadImage(str(out))
    assert Geometry.of(written).matches(Geometry.of(ct))
    labels = sitk.GetArrayFromImage(written)
    assert set(np.unique(labels)) == {0, 1, 2}
    assert labels[truth["tumour"]].min() == lungs.RIGHT
    assert nnts(["lungs", "-i", str(tmp_path / "none.nii.gz"), "-o", str(out)]) == 1
    assert (
        nnts(
            ["lungs", "-i", str(ct_path), "-o", str(tmp_path / "x.nii.gz"), "--method", "lungmask"]
        )
        == 1
    )
    assert not (tmp_path / "x.nii.gz").exists()


def test_per_lung_crops_contain_lungs_and_tumour_and_map_back(no_env_weights):
    ct, truth = synthetic_chest(direction=FLIP_XZ)
    result = lungs.lung_mask(ct)
    spacing = spacing_zyx(Geometry.of(ct))
    right_box, left_box = lung_crop_boxes(result.labels, spacing, margin_mm=10, per_lung=True)
    assert (right_box.name, left_box.name) == ("right", "left")
    for box, lung in ((right_box, truth["right"] | truth["tumour"]), (left_box, truth["left"])):
        inside = np.zeros_like(lung)
        inside[box.slices] = True
        assert not (lung & ~inside).any()
        cropped = crop_image(ct, box)
        back = paste_image(cropped, box, ct, fill=-1000)
        assert Geometry.of(back).matches(Geometry.of(ct), tol=1e-9)
        expected = np.full(lung.shape, -1000, np.int16)
        expected[box.slices] = sitk.GetArrayFromImage(ct)[box.slices]
        np.testing.assert_array_equal(sitk.GetArrayFromImage(back), expected)


def test_phantom_juxtapleural_tumours_stay_inside_region_and_crops(no_env_weights):
    """Juxtapleural tumours of the project's phantom: the threshold leaves them out, the region keeps
    (nearly all of) them and the per-lung crop boxes keep all of them."""
    phantom = pytest.importorskip("nnunet_teacher_student.phantom.cases")
    from scipy import ndimage

    in_raw = in_region = in_boxes = total = 0
    for seed in range(12):
        case = phantom.generate_case(seed, "nsclc", n_tumours=3)
        if not any(t["placement"] == "juxtapleural" for t in case.info["tumours"]):
            continue
        result = lungs.lung_mask(case.ct, method="classical")
        boxes = lung_crop_boxes(
            result.labels, spacing_zyx(Geometry.of(case.ct)), margin_mm=10, per_lung=True
        )
        assert len(boxes) == 2
        inside_boxes = np.zeros(result.mask.shape, bool)
        for box in boxes:
            inside_boxes[box.slices] = True
        components, n = ndimage.label(sitk.GetArrayFromImage(case.label) > 0)
        for i in range(1, n + 1):
            tumour = components == i
            centre = np.argwhere(tumour).mean(axis=0)
            info = min(
                case.info["tumours"],
                key=lambda t: np.linalg.norm(np.subtract(t["center_zyx"], centre)),
            )
            if info["placement"] != "juxtapleural":
                continue
            total += tumour.sum()
            in_raw += (result.raw_labels > 0)[tumour].sum()
            in_region += result.mask[tumour].sum()
            in_boxes += inside_boxes[tumour].sum()
        if total > 1500:
            break
    assert total > 500
    assert in_raw / total < 0.5  # what lung-mask cropping without closing would keep
    assert in_region / total > 0.97
    assert in_boxes == total
