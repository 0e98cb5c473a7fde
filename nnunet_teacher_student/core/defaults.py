"""Defaults that several steps share, named once."""

from __future__ import annotations

#: the box zone: a box grown in-plane by this much (mm); the teacher's prior, its inference, pseudo-labels and the
#: classical rule all use it, so that a pseudo-label is never wider than the zone the teacher learnt in
BOX_MARGIN_MM = 2.0


def case_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th case of a run seeded ``seed`` (its boxes' noise): distinct per case and run."""
    return seed * 100003 + index
