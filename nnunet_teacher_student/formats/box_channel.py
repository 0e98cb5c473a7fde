"""The teacher's box channel: the binary box mask fed to the box teacher as its second input channel
beside the CT. Its index, its file name in an nnU-Net dataset, stacking it with the CT, and the threshold
that keeps it binary live here once (no torch: readers of datasets and the trainers share it)."""

from __future__ import annotations

import numpy as np

from ..core import dataset_keys as keys
from .images import IMAGE_SUFFIX

CT_CHANNEL = 0
BOX_CHANNEL = 1
#: a box channel value above this is inside a box (after interpolation in nnU-Net's augmentation)
BOX_THRESHOLD = 0.5
#: dataset.json of a teacher dataset: the kind of its boxes, ``lesion`` (axial, the default) or ``lesion3d``
BOX_MODE_KEY = keys.BOX_MODE


def channel_suffix(channel: int) -> str:
    """nnU-Net's file suffix of an input channel: ``_0000`` (CT), ``_0001`` (boxes)."""
    return f"_{channel:04d}"


def channel_file(case: str, channel: int) -> str:
    """The image file name of a case's input channel, e.g. ``case_0001.nii.gz``."""
    return f"{case}{channel_suffix(channel)}{IMAGE_SUFFIX}"


def stack_channels(ct: np.ndarray, box_mask: np.ndarray | None) -> np.ndarray:
    """``[c, z, y, x]`` float32 network input: the CT, then the box mask when the model takes one."""
    channels = [ct.astype(np.float32)]
    if box_mask is not None:
        channels.append(box_mask.astype(np.float32))
    return np.stack(channels)
