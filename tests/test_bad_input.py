"""A battery of bad inputs across the ``nnts`` subcommands. For each: a non-zero exit, a message that names
the offending file, no traceback, and nothing written or changed in the working folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_teacher_student.formats.boxes import Box, BoxSet
from nnunet_teacher_student.cli import main as nnts
from nnunet_teacher_student.core.geometry import Geometry


def _ct(shape=(8, 24, 24), spacing=(0.8, 0.8, 2.0)) -> sitk.Image:
    arr = np.full(shape, -850, np.int16)
    arr[3:5, 8:14, 8:14] = 40
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    return img


def _write(img: sitk.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))
    return path


def _weak_set(root: Path, boxes_json: str | None = None, ct: sitk.Image | None = None) -> Path:
    """A one-case weak set ``root`` (images/, boxes/), with ``boxes_json`` as the box file's text if given."""
    ct = ct or _ct()
    _write(ct, root / "images" / "w.nii.gz")
    (root / "boxes").mkdir(parents=True, exist_ok=True)
    if boxes_json is None:
        BoxSet(Geometry.of(ct), [Box(3, 8, 8, 13, 13)]).save(root / "boxes" / "w.json")
    else:
        (root / "boxes" / "w.json").write_text(boxes_json)
    return root


def _box_doc(**change) -> str:
    doc = json.loads(BoxSet(Geometry.of(_ct()), [Box(3, 8, 8, 13, 13)]).to_json())
    doc.update(change)
    return json.dumps(doc)


# ------------------------------------------------------------------ image files (through ``nnts lungs``)
def truncated_gzip(t: Path):
    good = _write(_ct(), t / "full.nii.gz").read_bytes()
    (t / "ct.nii.gz").write_bytes(good[: len(good) // 3])
    (t / "full.nii.gz").unlink()
    return ["lungs", "-i", str(t / "ct.nii.gz"), "-o", str(t / "out.nii.gz")], "ct.nii.gz"


def empty_image(t: Path):
    (t / "ct.nii.gz").write_bytes(b"")
    return ["lungs", "-i", str(t / "ct.nii.gz"), "-o", str(t / "out.nii.gz")], "ct.nii.gz"


def text_as_image(t: Path):
    (t / "ct.nii.gz").write_text("patient list\n1,2,3\n")
    return ["lungs", "-i", str(t / "ct.nii.gz"), "-o", str(t / "out.nii.gz")], "ct.nii.gz"


def text_as_nrrd(t: Path):
    (t / "ct.nrrd").write_text(
        "NRRD0004\ntype: float\ndimension: 3\nsizes: 10 10 10\nencoding: raw\n\n"
    )
    return ["lungs", "-i", str(t / "ct.nrrd"), "-o", str(t / "out.nii.gz")], "ct.nrrd"


def image_2d(t: Path):
    _write(sitk.GetImageFromArray(np.zeros((24, 24), np.int16)), t / "ct.nii.gz")
    return ["lungs", "-i", str(t / "ct.nii.gz"), "-o", str(t / "out.nii.gz")], "ct.nii.gz"


def image_4d(t: Path):
    _write(sitk.GetImageFromArray(np.zeros((2, 4, 24, 24), np.int16)), t / "ct.nii.gz")
    return ["lungs", "-i", str(t / "ct.nii.gz"), "-o", str(t / "out.nii.gz")], "ct.nii.gz"


def missing_image(t: Path):
    return ["lungs", "-i", str(t / "nope.nii.gz"), "-o", str(t / "out.nii.gz")], "nope.nii.gz"


# ------------------------------------------------------------------ conversion (``nnts convert folder``)
def _convert_masks(t: Path, mask: sitk.Image | None, ct: sitk.Image | None = None):
    _write(ct or _ct(), t / "cts" / "a.nii.gz")
    (t / "masks").mkdir()
    if mask is not None:
        _write(mask, t / "masks" / "a.nii.gz")
    return [
        "convert",
        "folder",
        str(t / "cts"),
        "--masks",
        str(t / "masks"),
        "-o",
        str(t / "raw"),
        "-d",
        "7",
    ]


def _mask(arr: np.ndarray, like: sitk.Image | None = None) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(like or _ct())
    return img


def convert_truncated_ct(t: Path):
    argv = _convert_masks(t, _mask((sitk.GetArrayFromImage(_ct()) > 0).astype(np.uint8)))
    data = (t / "cts" / "a.nii.gz").read_bytes()
    (t / "cts" / "a.nii.gz").write_bytes(data[: len(data) // 2])
    return argv, "a.nii.gz"


def convert_mask_other_geometry(t: Path):
    mask = sitk.GetImageFromArray(np.ones((8, 20, 20), np.uint8))
    return _convert_masks(t, mask), "a"


def convert_mask_label_values(t: Path):
    arr = np.zeros((8, 24, 24), np.uint8)
    arr[3:5, 8:14, 8:14] = 1
    arr[0, 0, 0] = 7
    return _convert_masks(t, _mask(arr)), "a"


def convert_float_mask(t: Path):
    arr = np.zeros((8, 24, 24), np.float32)
    arr[3:5, 8:14, 8:14] = 0.5
    return _convert_masks(t, _mask(arr)), "a"


def convert_missing_mask(t: Path):
    return _convert_masks(t, None), "a"


def convert_empty_mask(t: Path):
    return _convert_masks(t, _mask(np.zeros((8, 24, 24), np.uint8))), "a"


def convert_bad_dataset_id(t: Path):
    argv = _convert_masks(t, _mask(np.ones((8, 24, 24), np.uint8)))
    return argv[:-1] + ["1000"], "1000"


def convert_id_collision(t: Path):
    (t / "raw" / "Dataset007_Other").mkdir(parents=True)
    (t / "raw" / "Dataset007_Other" / "dataset.json").write_text("{}")
    return _convert_masks(t, _mask(np.ones((8, 24, 24), np.uint8))), "Dataset007_Other"


def convert_foreign_output(t: Path):
    _write(_ct(), t / "cts" / "a.nii.gz")
    (t / "boxes").mkdir()
    BoxSet(Geometry.of(_ct()), [Box(3, 8, 8, 13, 13)]).save(t / "boxes" / "a.json")
    (t / "mine").mkdir()
    (t / "mine" / "notes.txt").write_text("my own files")
    return [
        "convert",
        "folder",
        str(t / "cts"),
        "--boxes",
        str(t / "boxes"),
        "-o",
        str(t / "mine"),
    ], "mine"


def _convert_boxes(t: Path, name: str, text: str):
    _write(_ct(), t / "cts" / "a.nii.gz")
    (t / "boxes").mkdir()
    (t / "boxes" / name).write_text(text)
    return [
        "convert",
        "folder",
        str(t / "cts"),
        "--boxes",
        str(t / "boxes"),
        "-o",
        str(t / "weak"),
    ], "a"


def boxes_invalid_json(t: Path):
    return _convert_boxes(t, "a.json", "{not json")


def boxes_missing_geometry(t: Path):
    doc = json.loads(_box_doc())
    doc.pop("geometry")
    return _convert_boxes(t, "a.json", json.dumps(doc))


def boxes_outside_image(t: Path):
    return _convert_boxes(t, "a.csv", "slice,xmin,ymin,xmax,ymax\n3,2,2,40,10\n")


def boxes_inverted(t: Path):
    return _convert_boxes(t, "a.csv", "slice,xmin,ymin,xmax,ymax\n3,10,2,4,10\n")


def boxes_csv_missing_column(t: Path):
    return _convert_boxes(t, "a.csv", "slice,xmin,ymin\n3,2,2\n")


def boxes_csv_not_numbers(t: Path):
    return _convert_boxes(t, "a.csv", "slice,xmin,ymin,xmax,ymax\nthree,2,2,4,4\n")


# ------------------------------------------------------------------ VOC XML (``nnts convert lung-pet-ct-dx``)
def _lpcd(t: Path, xml: str):
    from dataset_conversion.conftest import (
        write_series,
    )  # the DICOM series builder of the converter tests

    patient = t / "src" / "Lung_Dx-A0001" / "study" / "series"
    write_series(patient, sitk.GetArrayFromImage(_ct((20, 32, 32))))
    (t / "ann" / "A0001").mkdir(parents=True)
    (t / "ann" / "A0001" / "bad.xml").write_text(xml)
    return [
        "convert",
        "lung-pet-ct-dx",
        str(t / "src"),
        str(t / "ann"),
        "-o",
        str(t / "weak"),
    ], "A0001"


def xml_malformed(t: Path):
    return _lpcd(t, "<annotation><object><name>A</name>")


def xml_hostile_entities(t: Path):
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        "<annotation><filename>&lol2;</filename></annotation>"
    )
    return _lpcd(t, bomb)


def xml_external_entity(t: Path):
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<annotation><filename>&x;</filename></annotation>"
    )
    return _lpcd(t, xxe)


# ------------------------------------------------------------------ DICOM series (``nnts lungs`` on a folder)
def dicom_corrupt_file(t: Path):
    from dataset_conversion.conftest import write_series

    write_series(t / "series", sitk.GetArrayFromImage(_ct((10, 32, 32))))
    bad = sorted((t / "series").glob("*"))[4]
    bad.write_bytes(bad.read_bytes()[:200])
    return ["lungs", "-i", str(t / "series"), "-o", str(t / "out.nii.gz")], "series"


def dicom_missing_slice(t: Path):
    from dataset_conversion.conftest import write_series

    write_series(t / "series", sitk.GetArrayFromImage(_ct((10, 32, 32))))
    sorted((t / "series").glob("*"))[5].unlink()
    return ["lungs", "-i", str(t / "series"), "-o", str(t / "out.nii.gz")], "series"


def dicom_no_images(t: Path):
    (t / "series").mkdir()
    (t / "series" / "readme.txt").write_text("no DICOM here")
    return ["lungs", "-i", str(t / "series"), "-o", str(t / "out.nii.gz")], "series"


# ------------------------------------------------------------------ weak sets (``nnts pseudo-label --teacher classical``)
def _pseudo(t: Path, weak: Path):
    return [
        "pseudo-label",
        "--teacher",
        "classical",
        "-i",
        str(weak),
        "-o",
        str(t / "pseudo"),
        "--quiet",
    ]


def weak_set_missing(t: Path):
    return _pseudo(t, t / "nowhere"), "nowhere"


def weak_boxes_other_geometry(t: Path):
    weak = _weak_set(
        t / "weak", _box_doc(geometry={**json.loads(_box_doc())["geometry"], "size": [30, 30, 8]})
    )
    return _pseudo(t, weak), "w.json"


def weak_boxes_bad_version(t: Path):
    return _pseudo(t, _weak_set(t / "weak", _box_doc(version=99))), "w.json"


def weak_truncated_ct(t: Path):
    weak = _weak_set(t / "weak")
    data = (weak / "images" / "w.nii.gz").read_bytes()
    (weak / "images" / "w.nii.gz").write_bytes(data[: len(data) // 2])
    return _pseudo(t, weak), "w.nii.gz"


# ------------------------------------------------------------------ evaluation
def _evaluate(t: Path, pred: sitk.Image, gt: sitk.Image | None = None):
    _write(pred, t / "pred" / "c.nii.gz")
    _write(gt or _mask((sitk.GetArrayFromImage(_ct()) > 0).astype(np.uint8)), t / "gt" / "c.nii.gz")
    return [
        "evaluate",
        "--pred",
        str(t / "pred"),
        "--gt",
        str(t / "gt"),
        "-o",
        str(t / "eval"),
        "--quiet",
    ]


def eval_geometry_mismatch(t: Path):
    return _evaluate(t, sitk.GetImageFromArray(np.zeros((8, 20, 20), np.uint8))), "c.nii.gz"


def eval_float_labels(t: Path):
    return _evaluate(t, _mask(np.full((8, 24, 24), 0.5, np.float32))), "c.nii.gz"


def eval_missing_prediction(t: Path):
    argv = _evaluate(t, _mask(np.zeros((8, 24, 24), np.uint8)))
    _write(_mask(np.zeros((8, 24, 24), np.uint8)), t / "gt" / "d.nii.gz")
    return argv, "d"


def eval_truncated_prediction(t: Path):
    argv = _evaluate(t, _mask(np.zeros((8, 24, 24), np.uint8)))
    data = (t / "pred" / "c.nii.gz").read_bytes()
    (t / "pred" / "c.nii.gz").write_bytes(data[:40])
    return argv, "c.nii.gz"


# ------------------------------------------------------------------ models (``nnts predict``)
def _predict(t: Path, model: Path, *extra: str):
    _write(_ct(), t / "ct.nii.gz")
    return [
        "predict",
        "-i",
        str(t / "ct.nii.gz"),
        "-o",
        str(t / "out"),
        "-m",
        str(model),
        "-device",
        "cpu",
        *extra,
    ]


def model_not_a_model(t: Path):
    (t / "model").mkdir()
    return _predict(t, t / "model"), "model"


def model_without_folds(t: Path):
    (t / "model").mkdir()
    (t / "model" / "plans.json").write_text("{}")
    (t / "model" / "dataset.json").write_text("{}")
    return _predict(t, t / "model"), "model"


def model_missing_fold(t: Path):
    argv, needle = model_without_folds(t)
    (t / "model" / "fold_1").mkdir()
    return _predict(t, t / "model", "-f", "0"), "fold_0"


def predict_empty_input_folder(t: Path):
    (t / "in").mkdir()
    (t / "model").mkdir()
    return ["predict", "-i", str(t / "in"), "-o", str(t / "out"), "-m", str(t / "model")], "in"


# ------------------------------------------------------------------ configs and datasets
def config_missing(t: Path):
    return ["pipeline", str(t / "none.toml"), "--dry-run"], "none.toml"


def config_not_toml(t: Path):
    (t / "p.toml").write_text("[data\nstrong = 1")
    return ["pipeline", str(t / "p.toml"), "--dry-run"], "p.toml"


def config_unknown_key(t: Path):
    (t / "p.toml").write_text("[data]\nstrong = 1\nweak = 'w'\n[train]\nepoch = 1\n")
    return ["pipeline", str(t / "p.toml"), "--dry-run"], "p.toml"


def config_removed_jitter(t: Path):
    (t / "p.toml").write_text("[data]\nstrong = 1\nweak = 'w'\n[train]\njitter = 2\n")
    return ["pipeline", str(t / "p.toml"), "--dry-run"], 'annotator = "voxels=2"'


def synth_removed_jitter(t: Path):
    return ["synth", "-o", str(t / "ph"), "-d", "1", "--jitter", "2"], "--annotator voxels=2"


def config_unknown_section(t: Path):
    (t / "p.toml").write_text("[dataz]\n")
    return ["pipeline", str(t / "p.toml"), "--dry-run"], "p.toml"


def teacher_dataset_unknown_strong(t: Path):
    return ["make-teacher-dataset", "--strong", "987", "-d", "988", "--name", "T"], "987"


def synth_existing_output(t: Path):
    (t / "ph" / "manifest.json").parent.mkdir()
    (t / "ph" / "manifest.json").write_text("{}")
    return [
        "synth",
        "-o",
        str(t / "ph"),
        "-d",
        "989",
        "--raw",
        str(t / "raw"),
        "--strong",
        "1",
        "--weak",
        "0",
        "--test",
        "0",
        "--preset",
        "tiny",
    ], "manifest.json"


BATTERY: list[Callable[[Path], tuple[list[str], str]]] = [
    truncated_gzip,
    empty_image,
    text_as_image,
    text_as_nrrd,
    image_2d,
    image_4d,
    missing_image,
    convert_truncated_ct,
    convert_mask_other_geometry,
    convert_mask_label_values,
    convert_float_mask,
    convert_missing_mask,
    convert_empty_mask,
    convert_bad_dataset_id,
    convert_id_collision,
    convert_foreign_output,
    boxes_invalid_json,
    boxes_missing_geometry,
    boxes_outside_image,
    boxes_inverted,
    boxes_csv_missing_column,
    boxes_csv_not_numbers,
    xml_malformed,
    xml_hostile_entities,
    xml_external_entity,
    dicom_corrupt_file,
    dicom_missing_slice,
    dicom_no_images,
    weak_set_missing,
    weak_boxes_other_geometry,
    weak_boxes_bad_version,
    weak_truncated_ct,
    eval_geometry_mismatch,
    eval_float_labels,
    eval_missing_prediction,
    eval_truncated_prediction,
    model_not_a_model,
    model_without_folds,
    model_missing_fold,
    predict_empty_input_folder,
    config_missing,
    config_not_toml,
    config_unknown_key,
    config_unknown_section,
    config_removed_jitter,
    synth_removed_jitter,
    teacher_dataset_unknown_strong,
    synth_existing_output,
]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() or p.is_dir()
    }


@pytest.mark.parametrize("make", BATTERY, ids=[f.__name__ for f in BATTERY])
def test_bad_input_is_refused_cleanly(make, tmp_path, capsys, nnunet_env):
    work = tmp_path / "work"
    work.mkdir()
    argv, needle = make(work)
    before = _snapshot(work)
    capsys.readouterr()
    rc = nnts(argv)
    out, err = capsys.readouterr()
    text = out + err
    assert rc != 0, f"{make.__name__}: exit 0\n{text[-2000:]}"
    assert needle in text, f"{make.__name__}: the message does not name {needle!r}:\n{text[-2000:]}"
    assert "Traceback" not in text
    assert _snapshot(work) == before, f"{make.__name__}: files written or changed"


def test_debug_shows_the_traceback(tmp_path, capsys):
    argv, _ = missing_image(tmp_path)
    assert nnts(["--debug", *argv]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "nope.nii.gz" in err


def test_battery_has_at_least_thirty_kinds():
    assert len(BATTERY) >= 30 and len({f.__name__ for f in BATTERY}) == len(BATTERY)
