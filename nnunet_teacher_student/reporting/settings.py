"""What a run report says about its run besides the results (:class:`ReportSettings`): the CLI (``nnts
pipeline``), the demo and the Python API build the same object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

PHANTOM_CAVEAT = (
    "These are synthetic phantoms with a short training budget and one seed; a real "
    "comparison needs real data, the full budget and several folds/seeds. The tables report what was "
    "measured here, nothing more."
)


@dataclass(frozen=True)
class ReportSettings:
    """The run report's title, introduction, settings table, commands and closing caveat."""

    title: str
    intro: str
    run_settings: Mapping = field(default_factory=dict)  # the "Settings" table (nested keys dotted)
    commands: tuple[str, ...] = ()  # the run's steps as commands
    continue_lines: tuple[str, ...] = ()  # the lines that continue with nnU-Net's own commands
    quick: bool = False  # a ``--quick`` smoke run: its numbers measure nothing
    caveat: str = PHANTOM_CAVEAT  # the summary's last paragraph (not for a quick run)
