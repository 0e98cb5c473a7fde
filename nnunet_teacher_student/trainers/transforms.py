"""Augmentation wrappers that keep guidance channels (the box mask) binary and untouched.

nnU-Net's pipeline interpolates every image channel in its spatial transform and applies its
intensity transforms to every channel. For a box channel we want: the same spatial transform as
the CT (so both move together), re-binarised afterwards, and no intensity augmentation.
"""

from __future__ import annotations

from typing import Sequence

import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform, ImageOnlyTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.pseudo2d import (
    Convert2DTo3DTransform,
    Convert3DTo2DTransform,
)
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.random import RandomTransform

from ..formats.box_channel import BOX_THRESHOLD


class BinarizeChannels(ImageOnlyTransform):
    """Set ``channels`` of the image to ``value > threshold``."""

    def __init__(self, channels: Sequence[int], threshold: float = BOX_THRESHOLD):
        super().__init__()
        self.channels = list(channels)
        self.threshold = threshold

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        img[self.channels] = (img[self.channels] > self.threshold).to(img.dtype)
        return img


class OnlyChannels(BasicTransform):
    """Apply an image-only transform to a subset of channels, leaving the others as they were."""

    def __init__(self, transform: BasicTransform, channels: Sequence[int]):
        super().__init__()
        self.transform = transform
        self.channels = list(channels)

    def apply(self, data_dict: dict, **params) -> dict:
        img = data_dict.get("image")
        if img is None:
            return data_dict
        sub = self.transform(image=img[self.channels].clone())["image"]
        img = img.clone()
        img[self.channels] = sub
        data_dict["image"] = img
        return data_dict


def _is_intensity(t: BasicTransform) -> bool:
    inner = t.transform if isinstance(t, RandomTransform) else t
    return isinstance(inner, ImageOnlyTransform)


def protect_guidance_channels(
    pipeline: ComposeTransforms,
    num_channels: int,
    guidance: Sequence[int],
    after_spatial: Sequence[BasicTransform] = (),
) -> ComposeTransforms:
    """Rewrite nnU-Net's pipeline: binarise guidance channels before and after the spatial
    transform and restrict every intensity transform to the image channels; ``after_spatial``
    transforms run right after the spatial transform (back in 3-D), e.g. the online box channel."""
    image_channels = [c for c in range(num_channels) if c not in set(guidance)]
    out: list[BasicTransform] = [BinarizeChannels(guidance)]
    pseudo_2d = False  # between Convert3DTo2D and Convert2DTo3D channels are mixed with z
    for t in pipeline.transforms:
        if _is_intensity(t) and not pseudo_2d:
            out.append(OnlyChannels(t, image_channels))
            continue
        out.append(t)
        if isinstance(t, Convert3DTo2DTransform):
            pseudo_2d = True
        elif isinstance(t, Convert2DTo3DTransform):
            pseudo_2d = False
            out.extend([BinarizeChannels(guidance), *after_spatial])
        elif isinstance(t, SpatialTransform) and not pseudo_2d:
            out.extend([BinarizeChannels(guidance), *after_spatial])
    return ComposeTransforms(out)
