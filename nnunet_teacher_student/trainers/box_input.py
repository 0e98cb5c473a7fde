"""The box teacher's box channel during training, and its box prior.

- :class:`OnlineBoxChannel`: after nnU-Net's spatial transform, the box channel of each training
  sample is drawn anew from the sample's (augmented) label: one axial box per lesion per slice,
  jittered by the annotator model. Box and CT never disagree (a rotated case gets axis-aligned
  boxes, as at inference) and the teacher sees a fresh box/tumour offset at every sample.
- :class:`BoxPrior`: the network's tumour logit is a residual on a fixed prior from its box input:
  ``+inside`` in the box, ``ring`` in the margin around it, ``outside`` beyond. An untrained teacher
  therefore predicts the box, not nothing (it cannot start in nnU-Net's all-background state), and
  outside the box zone background is fixed (its gradient vanishes): the loss is spent where the
  answer is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from torch import nn

from ..formats.annotator import Annotator
from ..formats.box_channel import BOX_THRESHOLD
from ..formats.boxes import BoxMode, box_mask, boxes_from_mask
from .networks import WrappedNetwork


@dataclass(frozen=True)
class PriorLogits:
    """The box prior's tumour logits: in the box, in the ring of the box zone around it, beyond."""

    inside: float = 2.0
    ring: float = -1.0
    outside: float = -8.0


def sample_box_channel(
    label: np.ndarray,
    axial_axis: int,
    annotator: Annotator,
    spacing: Sequence[float],
    rng: np.random.Generator,
    mode: BoxMode = "lesion",
) -> np.ndarray:
    """Box mask (same shape as ``label``) of annotator-drawn axial boxes around the lesions of ``label > 0``
    (``mode`` ``lesion3d``: one 3-D box per lesion). A 2-D ``label`` (nnU-Net's 2d configuration) is one
    axial slice."""
    if np.ndim(label) == 2:
        return sample_box_channel(
            np.asarray(label)[None], 0, annotator, [1.0, *spacing[-2:]], rng, mode
        )[0]
    lab = np.moveaxis(np.asarray(label) > 0, axial_axis, 0)
    sp = list(spacing)
    sp.insert(0, sp.pop(axial_axis))
    boxes = boxes_from_mask(lab, mode, seed=rng, annotator=annotator, spacing_zyx=sp)
    return np.moveaxis(box_mask(boxes, lab.shape), 0, axial_axis)


class OnlineBoxChannel(BasicTransform):
    """Replace image channel ``channel`` by a fresh box mask drawn from the sample's segmentation."""

    def __init__(
        self,
        channel: int,
        annotator: Annotator,
        spacing: Sequence[float],
        axial_axis: int = 0,
        mode: BoxMode = "lesion",
    ):
        super().__init__()
        self.mode = mode
        self.channel = channel
        self.annotator = annotator
        self.spacing = tuple(float(s) for s in spacing)
        self.axial_axis = axial_axis

    def apply(self, data_dict: dict, **params) -> dict:
        img, seg = data_dict.get("image"), data_dict.get("segmentation")
        if img is None or seg is None:
            return data_dict
        rng = np.random.default_rng(
            np.random.randint(0, 2**31 - 1)
        )  # seeded through numpy's global state
        label = seg[0].numpy() if isinstance(seg, torch.Tensor) else np.asarray(seg[0])
        boxes = sample_box_channel(
            label, self.axial_axis, self.annotator, self.spacing, rng, self.mode
        )
        img = img.clone()
        img[self.channel] = torch.from_numpy(boxes).to(img.dtype)
        data_dict["image"] = img
        return data_dict


def _pool_to(mask: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    pool = F.adaptive_max_pool2d if mask.ndim == 4 else F.adaptive_max_pool3d
    return mask if tuple(mask.shape[2:]) == tuple(shape) else pool(mask, tuple(shape))


class BoxPrior(WrappedNetwork):
    """Binarise the box channel, run ``net``, add the box prior to the tumour logit (channel 1) of every
    output scale. ``margin_vox`` is the box zone's in-plane growth per axis (0 on the axial axis)."""

    def __init__(
        self,
        net: nn.Module,
        box_channel: int,
        margin_vox: Sequence[int],
        tumour_channel: int = 1,
        logits: PriorLogits = PriorLogits(),
        bright_threshold: float | None = None,
        ct_channel: int = 0,
    ):
        super().__init__(net)
        self.bright_threshold = (
            bright_threshold  # set: only box voxels of the (normalised) CT above it get +inside
        )
        self.ct_channel = ct_channel
        self.box_channel = box_channel
        self.margin_vox = tuple(int(m) for m in margin_vox)
        self.tumour_channel = tumour_channel
        self.inside, self.ring, self.outside = logits.inside, logits.ring, logits.outside

    def prior(self, box: torch.Tensor, ct: torch.Tensor | None = None) -> torch.Tensor:
        """Prior logit ``(b, 1, *spatial)`` of a binary box mask ``(b, 1, *spatial)`` (and the CT channel)."""
        kernel = tuple(2 * m + 1 for m in self.margin_vox)
        pool = F.max_pool2d if box.ndim == 4 else F.max_pool3d  # 2-D or 3-D patches
        zone = pool(box, kernel, stride=1, padding=self.margin_vox) if any(self.margin_vox) else box
        core = (
            box
            if self.bright_threshold is None or ct is None
            else box * (ct > self.bright_threshold).to(box.dtype)
        )
        return self.outside + (self.ring - self.outside) * zone + (self.inside - self.ring) * core

    def forward(self, x: torch.Tensor):
        x = x.clone()
        box = (x[:, self.box_channel : self.box_channel + 1] > BOX_THRESHOLD).to(x.dtype)
        x[:, self.box_channel : self.box_channel + 1] = box
        out = self.net(x)
        prior = self.prior(box, x[:, self.ct_channel : self.ct_channel + 1])
        outputs = out if isinstance(out, (list, tuple)) else [out]
        shifted = []
        for o in outputs:
            p = _pool_to(prior, o.shape[2:]).to(o.dtype)
            o = o.clone()
            o[:, self.tumour_channel : self.tumour_channel + 1] += p
            shifted.append(o)
        return shifted if isinstance(out, (list, tuple)) else shifted[0]
