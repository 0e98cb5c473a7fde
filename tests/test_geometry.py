"""Shared file helpers of ``geometry``: JSON files read with errors that name the file."""
from __future__ import annotations

import pytest

from nnunet_teacher_student.boxes import BoxError
from nnunet_teacher_student.geometry import InputError, read_json_file, write_text_atomic


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "bad.json"]  # no temporary file left
