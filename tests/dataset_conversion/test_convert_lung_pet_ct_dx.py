"""Lung-PET-CT-Dx converter: the real sample, the paper's series selection, bad annotations, resuming."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_teacher_student import cli
from nnunet_teacher_student.formats.boxes import BoxSet
from nnunet_teacher_student.dataset_conversion.lung_pet_ct_dx import convert_lung_pet_ct_dx
from nnunet_teacher_student.dataset_conversion.settings import ConversionSettings
from nnunet_teacher_student.dataset_conversion.splits import load_manifest
from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.formats.weak_set import WeakSet

BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<annotation><object><name>&lol3;</name></object></annotation>"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><annotation><folder>&x;</folder></annotation>"""


def convert_sample(sample, out, *extra: str) -> int:
    """``nnts convert lung-pet-ct-dx`` of the real sample into the weak set ``out``; its exit status."""
    return cli.main(
        [
            "convert",
            "lung-pet-ct-dx",
            str(sample / "Lung-PET-CT-Dx"),
            str(sample / "Annotation"),
            "-o",
            str(out),
            *extra,
        ]
    )


def test_real_sample_via_cli(sample, tmp_path, capsys):
    out = tmp_path / "weak"
    rc = convert_sample(sample, out)
    printed = capsys.readouterr().out
    assert rc == 0
    assert "8 annotation file(s) match no slice of a kept series" in printed
    assert "selection: 1 images (series) found, 1 kept" in printed
    summary = json.loads((out / "conversion_summary.json").read_text())
    assert summary["converted"] == ["Lung_Dx-A0002_3"]
    assert summary["counts"]["annotation files matched"] == 10
    assert summary["counts"]["annotation files unmatched"] == 8
    assert len(summary["unmatched_annotations"]["Lung_Dx-A0002"]) == 8

    weak = WeakSet(out)
    assert weak.case_ids() == ["Lung_Dx-A0002_3"]
    image, boxset = weak.read_case("Lung_Dx-A0002_3")
    assert image.GetPixelID() == sitk.sitkInt16 and image.GetSize() == (512, 512, 30)
    assert sorted(b.slice for b in boxset.boxes) == list(range(12, 22))  # InstanceNumber 9..18
    assert {b.label for b in boxset.boxes} == {"A"}
    # the fixture mask is "inside the boxes and HU > -300": our boxes must give it back exactly
    ref = sitk.GetArrayFromImage(
        sitk.ReadImage(str(sample / "rtstruct-seg-fixtures" / "A0002_B40f_GTV-1_mask.nii.gz"))
    )
    boxmask, _ = weak.read_boxmask("Lung_Dx-A0002_3", boxset.geometry)
    assert ((boxmask > 0) & (sitk.GetArrayFromImage(image) > -300) == (ref > 0)).all()
    meta = weak.metadata()["Lung_Dx-A0002_3"]
    assert (
        meta["classes"] == ["A"]
        and meta["patient"] == "Lung_Dx-A0002"
        and meta["split"] in ("train", "test")
    )
    assert (
        load_manifest(out / "manifest.json")["cases"]["Lung_Dx-A0002_3"]["dataset"]
        == "lung-pet-ct-dx"
    )


def test_real_sample_as_3d_boxes(sample, tmp_path):
    """--boxes-3d: the real series' ten axial boxes of one lesion become one 3-D box holding every one of them."""
    flat, deep = tmp_path / "weak2d", tmp_path / "weak3d"
    for out, extra in ((flat, []), (deep, ["--boxes-3d"])):
        assert convert_sample(sample, out, *extra) == 0
    _, boxes2d = WeakSet(flat).read_case("Lung_Dx-A0002_3")
    _, boxes3d = WeakSet(deep).read_case("Lung_Dx-A0002_3")
    assert sorted(b.slice for b in boxes3d.boxes) == list(range(12, 22))
    assert (
        len({(b.xmin, b.ymin, b.xmax, b.ymax) for b in boxes3d.boxes})
        == 1
        < len({(b.xmin, b.ymin, b.xmax, b.ymax) for b in boxes2d.boxes})
    )
    m2, m3 = boxes2d.mask(), boxes3d.mask()
    assert (m3 >= m2).all() and m3.sum() > m2.sum()
    b = boxes3d.boxes[0]
    assert (b.xmin, b.xmax) == (
        min(x.xmin for x in boxes2d.boxes),
        max(x.xmax for x in boxes2d.boxes),
    )
    assert {x.label for x in boxes3d.boxes} == {"A"}


def _collection(tmp_path, build):
    """Two patients; A0001 has one good CT among PET, fused, stacked and short series, plus bad XMLs."""
    src, ann = tmp_path / "src", tmp_path / "Annotation"
    pdir = src / "Lung_Dx-A0001" / "study"
    vol = np.full((12, 64, 64), -900, np.int16)
    vol[5, 10:20, 30:42] = 100  # the lesion on z index 5: rows 10..19, columns 30..41
    flipped = build.write_series(
        pdir / "2-CT", vol, spacing=(0.7, 0.7, 20.0), iop=(-1, 0, 0, 0, -1, 0), series_number=2
    )
    pet = build.write_series(
        pdir / "3-PET", vol, spacing=(4, 4, 20.0), modality="PT", series_number=3
    )
    build.write_series(
        pdir / "4-FUSED",
        vol,
        spacing=(0.7, 0.7, 20.0),
        description="PET/CT Fusion",
        series_number=4,
    )
    build.write_series(
        pdir / "5-STACKED",
        vol,
        spacing=(0.7, 0.7, 20.0),
        series_number=5,
        positions_z=[0, 20, 40, 60, 80, 100, 0, 20, 40, 60, 80, 100],
    )
    build.write_series(pdir / "6-SHORT", vol[:5], spacing=(0.7, 0.7, 5.0), series_number=6)
    a = ann / "A0001"
    build.write_voc(a / f"{flipped[5].SOPInstanceUID}.xml", [("G", 30, 10, 41, 19)], 64, 64)
    build.write_voc(a / f"{flipped[7].SOPInstanceUID}.xml", [("G", 0, 0, 3, 3)], 64, 64)
    build.write_voc(
        a / f"{flipped[8].SOPInstanceUID}.xml", [("G", 0, 0, 3, 3)], 512, 512
    )  # wrong image size
    build.write_voc(
        a / f"{flipped[9].SOPInstanceUID}.xml", [("G", 60, 0, 64, 3)], 64, 64
    )  # beyond column 63
    build.write_voc(a / f"{pet[2].SOPInstanceUID}.xml", [("G", 1, 1, 5, 5)], 64, 64)
    build.write_voc(a / "1.2.3.4.5.xml", [("G", 1, 1, 5, 5)], 64, 64)
    (a / "1.2.3.4.6.xml").write_text("<annotation><object><name>A</name><bndbox><xmin>1")
    (a / "1.2.3.4.7.xml").write_text(BOMB)
    (a / "1.2.3.4.8.xml").write_text(XXE)
    vol2 = np.full((10, 32, 32), -900, np.int16)
    build.write_series(
        src / "Lung_Dx-B0002" / "study" / "2-CT", vol2, spacing=(1, 1, 25.0), patient="B0002"
    )
    return src, ann, flipped, pet


def test_selection_counts_bad_xml_and_box_placement(tmp_path, build):
    src, ann, flipped, pet = _collection(tmp_path, build)
    summary, out = convert_lung_pet_ct_dx(src, ann, ConversionSettings(out=tmp_path / "weak"))
    counts = summary.counts
    assert counts["series found"] == 6
    assert (counts["dropped: not CT"], counts["dropped: fused PET/CT"]) == (1, 1)
    assert (
        counts["dropped: stacked scans or missing slices"],
        counts["dropped: z-extent out of range"],
    ) == (1, 1)
    assert counts["kept (CT in range)"] == 2 and counts["kept without annotations"] == 1
    assert counts["annotation files malformed"] == 3 and counts["annotation files unmatched"] == 2
    assert [r.case for r in summary.cases("converted")] == ["Lung_Dx-A0001_2"]
    assert counts["boxes rejected"] == 2
    rejected = " ".join(n for n in summary.notes if "box rejected" in n)
    assert (
        "512x512 differs from the slice (64x64)" in rejected
        and "(9, 60, 0, 64, 3) outside the image" in rejected
    )
    assert "no annotation matches" in summary.to_dict()["skipped"]["Lung_Dx-B0002_2"]
    unmatched = {
        u["file"].rsplit("/", 1)[1]: u["reason"]
        for u in summary.to_dict()["unmatched_annotations"]["Lung_Dx-A0001"]
    }
    assert "not CT" in unmatched[f"{pet[2].SOPInstanceUID}.xml"]
    assert unmatched["1.2.3.4.5.xml"].startswith("no slice")
    malformed = " ".join(summary.to_dict()["malformed_annotations"]["Lung_Dx-A0001"])
    assert "1.2.3.4.6.xml: malformed" in malformed and "1.2.3.4.7.xml: unsafe" in malformed
    assert "1.2.3.4.8.xml: unsafe" in malformed

    image, boxset = out.weak.read_case("Lung_Dx-A0001_2")
    assert np.allclose(np.reshape(image.GetDirection(), (3, 3)).diagonal(), (-1, -1, 1))
    assert {(b.slice, b.xmin, b.ymin, b.xmax, b.ymax, b.label) for b in boxset.boxes} == {
        (5, 30, 10, 41, 19, "G"),
        (7, 0, 0, 3, 3, "G"),
    }
    ct = sitk.GetArrayFromImage(image)
    box = boxset.mask()
    assert (ct[5][box[5] > 0] == 100).all() and (ct[5][box[5] == 0] == -900).all()


def test_resume_and_overwrite(tmp_path, build):
    src, ann = tmp_path / "src", tmp_path / "ann"
    for p in ("A0001", "E0002", "G0003"):
        vol = np.full((9, 32, 32), -900, np.int16)
        ds = build.write_series(
            src / f"Lung_Dx-{p}" / "s" / "2-CT", vol, spacing=(1, 1, 20.0), patient=p
        )
        build.write_voc(ann / p / f"{ds[4].SOPInstanceUID}.xml", [(p[0], 3, 4, 10, 12)], 32, 32)
    out = tmp_path / "weak"
    first, _ = convert_lung_pet_ct_dx(src, ann, ConversionSettings(out=out, num_processes=2))
    assert len(first.cases("converted")) == 3
    with pytest.raises(InputError, match="finished conversion"):
        convert_lung_pet_ct_dx(src, ann, ConversionSettings(out=out))
    # an interrupted run: completion marker absent, one case unfinished
    (out / "cases.json").unlink()
    (out / ".nnts_convert" / "Lung_Dx-E0002_2.json").unlink()
    second, _ = convert_lung_pet_ct_dx(src, ann, ConversionSettings(out=out))
    assert [r.case for r in second.cases("converted")] == ["Lung_Dx-E0002_2"]
    assert len(second.cases("resumed")) == 2
    meta = json.loads((out / "cases.json").read_text())
    assert sorted(meta) == ["Lung_Dx-A0001_2", "Lung_Dx-E0002_2", "Lung_Dx-G0003_2"]
    assert BoxSet.load(out / "boxes" / "Lung_Dx-E0002_2.json").boxes[0].label == "E"
    with pytest.raises(InputError, match="test fraction"):
        convert_lung_pet_ct_dx(
            src, ann, ConversionSettings(out=tmp_path / "elsewhere", test_fraction=1.5)
        )
    assert not (tmp_path / "elsewhere").exists()
    with pytest.raises(InputError, match="other options"):
        (out / "cases.json").unlink()
        convert_lung_pet_ct_dx(src, ann, ConversionSettings(out=out), min_cm=10)
    third, _ = convert_lung_pet_ct_dx(src, ann, ConversionSettings(out=out, overwrite=True))
    assert len(third.cases("converted")) == 3
    # a folder that is not ours is never used nor deleted
    shutil.rmtree(out)
    out.mkdir()
    (out / "precious.txt").write_text("x")
    with pytest.raises(InputError, match="not written by 'nnts convert'"):
        convert_lung_pet_ct_dx(src, ann, ConversionSettings(out=out, overwrite=True))
    assert (out / "precious.txt").is_file()
