"""Shared file helpers of ``geometry``: JSON files read with errors that name the file."""

from __future__ import annotations

import pytest

from nnunet_teacher_student.formats.boxes import BoxError
from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.core.files import read_json_file, write_text_atomic


def test_read_json_file_names_the_file_and_keeps_the_error_class(tmp_path):
    good = tmp_path / "a.json"
    write_text_atomic('{"x": [1, 2]}', good)
    assert read_json_file(good, "thing") == {"x": [1, 2]}
    with pytest.raises(InputError, match=r"missing\.json: manifest file does not exist"):
        read_json_file(tmp_path / "missing.json", "manifest file")
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe{")
    with pytest.raises(BoxError, match=r"bad\.json: box file is not valid JSON"):
        read_json_file(bad, "box file", BoxError)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.json",
        "bad.json",
    ]  # no temporary file left


def test_read_image_refuses_truncated_and_corrupt_gzip_images(tmp_path):
    """SimpleITK decompresses a truncated .nii.gz without an error; read_image must not."""
    import numpy as np
    import SimpleITK as sitk

    from nnunet_teacher_student.core.geometry import read_image

    arr = np.random.default_rng(0).integers(-1000, 1000, (12, 24, 24)).astype(np.int16)
    good = tmp_path / "ct.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(good))
    assert (sitk.GetArrayFromImage(read_image(good)) == arr).all()
    data = good.read_bytes()
    truncated, flipped = tmp_path / "short.nii.gz", tmp_path / "crc.nii.gz"
    truncated.write_bytes(data[: len(data) // 3])
    assert sitk.ReadImage(str(truncated)).GetSize() == (
        24,
        24,
        12,
    )  # what happens without the check
    flipped.write_bytes(
        data[:-6] + bytes([data[-6] ^ 0xFF]) + data[-5:]
    )  # a CRC byte of the trailer
    for bad in (truncated, flipped):
        with pytest.raises(InputError, match=rf"{bad.name}: corrupt or truncated gzip file"):
            read_image(bad)
