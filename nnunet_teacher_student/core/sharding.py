"""Which part of a job this process does: ``--num-parts/--part-id`` as ``nnUNetv2_predict`` spells them, or, when
neither is given, the SLURM array task (``sbatch --array=0-7 ...``: one part per task), or the whole job."""

from __future__ import annotations

import os
from typing import Mapping, Sequence

from .errors import InputError


def resolve_shard(
    num_parts: int | None, part_id: int | None, env: Mapping[str, str] = os.environ
) -> tuple[int, int, str]:
    """``(num_parts, part_id, where from)``. A SLURM array's task ids may start anywhere (``--array=1-8``):
    the part is the task id minus ``SLURM_ARRAY_TASK_MIN``."""
    if num_parts is not None or part_id is not None:
        n, k = (1 if num_parts is None else num_parts), (0 if part_id is None else part_id)
        where = "--num-parts/--part-id"
    elif env.get("SLURM_ARRAY_TASK_COUNT") and env.get("SLURM_ARRAY_TASK_ID"):
        try:
            n = int(env["SLURM_ARRAY_TASK_COUNT"])
            k = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        except ValueError as e:
            raise InputError(f"SLURM array variables are not integers: {e}") from e
        where = "SLURM array task"
    else:
        n, k, where = 1, 0, "the whole job"
    if n < 1 or not 0 <= k < n:
        raise InputError(f"part {k} of {n} ({where}): the part must be in 0..{n - 1}")
    return n, k, where


def part_cases(cases: Sequence[str], num_parts: int = 1, part_id: int = 0) -> list[str]:
    """The cases of part ``part_id`` of ``num_parts``: every ``num_parts``-th of the sorted cases."""
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise InputError(
            f"--part-id must be in 0..{num_parts - 1} for --num-parts {num_parts}, got {part_id}"
        )
    return sorted(cases)[part_id::num_parts]
