"""Shards from ``--num-parts/--part-id`` or from a SLURM array job's environment."""

from __future__ import annotations

import pytest

from nnunet_teacher_student.core.errors import InputError
from nnunet_teacher_student.core.sharding import part_cases, resolve_shard


def test_shard_from_arguments_slurm_or_whole_job():
    slurm = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "3"}
    assert resolve_shard(None, None, {}) == (1, 0, "the whole job")
    assert resolve_shard(None, None, slurm) == (
        4,
        2,
        "SLURM array task",
    )  # --array=3-6: task 5 is part 2
    assert resolve_shard(
        None, None, {**slurm, "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_ID": "0"}
    )[:2] == (4, 0)
    assert resolve_shard(3, 1, slurm) == (3, 1, "--num-parts/--part-id")  # the arguments win
    with pytest.raises(InputError, match="part 7 of 4"):
        resolve_shard(None, None, {**slurm, "SLURM_ARRAY_TASK_ID": "10"})
    with pytest.raises(InputError, match="not integers"):
        resolve_shard(None, None, {**slurm, "SLURM_ARRAY_TASK_ID": "x"})
    cases = [f"c{i}" for i in range(10)]
    parts = [
        part_cases(
            cases,
            *resolve_shard(
                None, None, {"SLURM_ARRAY_TASK_ID": str(k), "SLURM_ARRAY_TASK_COUNT": "3"}
            )[:2],
        )
        for k in range(3)
    ]
    assert sorted(sum(parts, [])) == sorted(cases) and all(parts)


def test_pseudo_label_takes_its_part_from_the_slurm_array(tmp_path, monkeypatch, capsys):
    import numpy as np
    import SimpleITK as sitk

    from nnunet_teacher_student.formats.boxes import Box, BoxSet
    from nnunet_teacher_student.cli import main as nnts
    from nnunet_teacher_student.core.geometry import Geometry
    from nnunet_teacher_student.formats.weak_set import WeakSet

    arr = np.full((6, 24, 24), -850, np.int16)
    arr[2:4, 8:14, 8:14] = 40
    ct = sitk.GetImageFromArray(arr)
    for k in range(4):
        WeakSet(tmp_path / "weak").write_case(
            f"w{k}", ct, BoxSet(Geometry.of(ct), [Box(2, 7, 7, 14, 14)])
        )
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert (
        nnts(
            [
                "pseudo-label",
                "--teacher",
                "classical",
                "-i",
                str(tmp_path / "weak"),
                "-o",
                str(tmp_path / "p"),
                "--quiet",
            ]
        )
        == 0
    )
    assert "part 1 of 2 (SLURM array task)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "p").glob("*.nii.gz")) == ["w1.nii.gz", "w3.nii.gz"]
