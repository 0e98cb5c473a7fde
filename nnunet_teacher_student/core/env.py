"""Every ``NNTS_*`` environment variable the package reads, named once, with its typed reader.

Training budget (read by our trainers inside ``nnUNetv2_train``; unset = nnU-Net's default):
``NNTS_EPOCHS``, ``NNTS_ITERATIONS`` (per epoch), ``NNTS_VAL_ITERATIONS``, ``NNTS_PATIENCE`` (early stopping of the
``_Paper`` trainers, epochs), ``NNTS_NO_MIRRORING=1`` (no mirroring augmentation or test-time mirroring),
``NNTS_SKIP_VALIDATION=1`` (no final validation). ``NNTS_SEED``: seeds Python, numpy and torch before the network
is built. ``NNTS_LUNGMASK_WEIGHTS``: a local lungmask R231 state dict. ``NNTS_DEBUG=1``: tracebacks on errors.
"""

from __future__ import annotations

import os

EPOCHS = "NNTS_EPOCHS"
ITERATIONS = "NNTS_ITERATIONS"
VAL_ITERATIONS = "NNTS_VAL_ITERATIONS"
PATIENCE = "NNTS_PATIENCE"
NO_MIRRORING = "NNTS_NO_MIRRORING"
SKIP_VALIDATION = "NNTS_SKIP_VALIDATION"
SEED = "NNTS_SEED"
LUNGMASK_WEIGHTS = "NNTS_LUNGMASK_WEIGHTS"
DEBUG = "NNTS_DEBUG"
#: the variables a training command needs, in the order they are printed
BUDGET = (EPOCHS, ITERATIONS, VAL_ITERATIONS, NO_MIRRORING, SKIP_VALIDATION)


def env_int(name: str) -> int | None:
    """The integer in ``name`` (None when unset or empty); a clear error for anything else."""
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as e:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from e


def env_flag(name: str) -> bool:
    """``1``, ``true`` or ``yes`` (any case) in ``name``."""
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
