"""What every converter shares (:class:`ConversionSettings`): where it writes, resuming, workers and the split.
``nnts convert`` and the Python API (``convert_*(src, settings, ...)``) build the same object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .splits import TEST_FRACTION


@dataclass(frozen=True)
class ConversionSettings:
    """Output (raw dataset id and name, or weak set folder), overwrite, workers and the train/test split."""

    # a raw dataset (masks): Dataset{dataset_id:03d}_{name} under out (None: $nnUNet_raw);
    # a weak set (boxes): the folder out. name None: the converter's default name
    out: str | Path | None = None
    dataset_id: int | None = None
    name: str | None = None
    overwrite: bool = False
    num_processes: int = 1
    # the patient-stratified train/test split of manifest.json
    seed: int = 0
    test_fraction: float = TEST_FRACTION

    def dataset_name(self, default: str) -> str:
        """The raw dataset's name: ``name``, or ``default`` when none was given."""
        return default if self.name is None else self.name
