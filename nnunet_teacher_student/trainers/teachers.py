"""Teacher trainers: box-guided (CT + box channel) and point-guided (CT only, the paper's ablation).

Both train on the same teacher dataset (``_0000`` CT, ``_0001`` box mask, see
``nnts make-teacher-dataset``), so their comparison is fair; the point teacher ignores the box
channel. Patches always contain tumour (nnU-Net's foreground oversampling at 100 %).

The box teacher: its box channel is drawn anew for every training sample from the augmented label
(:class:`~.box_channel.OnlineBoxChannel`, the dataset's annotator model), its patches hold a lesion
chosen uniformly at a random place in the patch (:mod:`.lesion_sampling`), and its tumour logit is a
residual on the box prior (:class:`~.box_channel.BoxPrior`: +2 on box voxels brighter than -700 HU, -1 on
the rest of the box and its margin, -8 beyond). The point teacher keeps the paper's
tumour-centred patches: the centre is all it is told.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..core.defaults import BOX_MARGIN_MM
from ..formats.annotator import Annotator, annotator_from
from ..core import dataset_keys as keys
from ..formats.box_channel import BOX_CHANNEL, BOX_MODE_KEY
from .base import DiceLossMixin, PaperSetupMixin, nnUNetTrainerNNTS
from .box_input import BoxPrior, OnlineBoxChannel
from .lesion_sampling import lesion_balanced
from .networks import NetworkRequest, PlannedNetworkMixin, WrappedNetwork
from .transforms import protect_guidance_channels

ANNOTATOR_KEY = keys.ANNOTATOR


PRIOR_HU = -700.0  # the box prior's +inside only on voxels brighter than aerated lung (ground-glass, -750..-300 HU, is in)


def normalised_hu(plans_manager, hu: float) -> float:
    """``hu`` in nnU-Net's CT normalisation of channel 0 (clipped to the foreground percentiles, z-scored)."""
    props = plans_manager.foreground_intensity_properties_per_channel["0"]
    clipped = min(max(hu, props["percentile_00_5"]), props["percentile_99_5"])
    return (clipped - props["mean"]) / max(props["std"], 1e-8)


def axial_axis(plans_manager) -> int:
    """The axis of the preprocessed arrays that was the CT's z axis (nnU-Net may transpose)."""
    return list(plans_manager.transpose_forward).index(0)


def box_zone_margin(spacing, axial: int, margin_mm: float = BOX_MARGIN_MM) -> list[int]:
    """In-plane voxels of the box zone's margin per axis of the preprocessed grid (0 along the axial axis; a 2-D
    configuration's two axes are both in-plane)."""
    return [
        0 if a == axial and len(spacing) == 3 else int(math.ceil(margin_mm / float(s) - 1e-9))
        for a, s in enumerate(spacing)
    ]


class SelectChannels(WrappedNetwork):
    """Feed only ``channels`` of the input to ``net`` (the point teacher never sees the box)."""

    def __init__(self, net: nn.Module, channels: tuple[int, ...]):
        super().__init__(net)
        self.channels = list(channels)

    def forward(self, x: torch.Tensor):
        return self.net(x[:, self.channels])


class _TeacherBase(PlannedNetworkMixin, nnUNetTrainerNNTS):
    """Patches always hold tumour; the paper's variants use the PReLU network with truncated stages."""

    def _nnts_setup(self) -> None:
        super()._nnts_setup()
        self.oversample_foreground_percent = 1.0


class nnUNetTrainerBoxTeacher(_TeacherBase):
    """Box-guided teacher: input CT + binary box channel. Training: a fresh annotator-drawn box channel
    per sample (after the spatial transform, so box and CT stay aligned; no intensity change), lesion-
    balanced off-centre patches. Network: box prior + learned residual (binary box input)."""

    @classmethod
    def _build_network(cls, request: NetworkRequest) -> nn.Module:
        plans_manager = request.plans_manager
        margin = box_zone_margin(request.configuration_manager.spacing, axial_axis(plans_manager))
        return BoxPrior(
            request.plain_unet(),
            BOX_CHANNEL,
            margin,
            tumour_channel=request.num_output_channels - 1,
            bright_threshold=normalised_hu(plans_manager, PRIOR_HU),
        )

    @property
    def annotator(self) -> Annotator:
        """The annotator model of the dataset's boxes (dataset.json), else the default one."""
        return annotator_from(annotator=self.dataset_json.get(ANNOTATOR_KEY))

    def get_tr_and_val_datasets(self):
        from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

        self.dataset_class = lesion_balanced(
            self.dataset_class or infer_dataset_class(self.preprocessed_dataset_folder)
        )
        dataset_tr, dataset_val = super().get_tr_and_val_datasets()
        for ds in (dataset_tr, dataset_val):
            ds.patch_size = tuple(self.configuration_manager.patch_size)
        return dataset_tr, dataset_val

    def get_training_transforms(
        self,
        patch_size,
        rotation_for_DA,
        deep_supervision_scales,
        mirror_axes,
        do_dummy_2d_data_aug,
        use_mask_for_norm=None,
        is_cascaded=False,
        foreground_labels=None,
        regions=None,
        ignore_label=None,
    ):
        pipeline = super().get_training_transforms(
            patch_size,
            rotation_for_DA,
            deep_supervision_scales,
            mirror_axes,
            do_dummy_2d_data_aug,
            use_mask_for_norm,
            is_cascaded,
            foreground_labels,
            regions,
            ignore_label,
        )
        online = OnlineBoxChannel(
            BOX_CHANNEL,
            self.annotator,
            self.configuration_manager.spacing,
            axial_axis(self.plans_manager),
            self.dataset_json.get(BOX_MODE_KEY, "lesion"),
        )
        return protect_guidance_channels(
            pipeline, len(self.dataset_json["channel_names"]), [BOX_CHANNEL], [online]
        )

    def get_validation_transforms(
        self,
        deep_supervision_scales,
        is_cascaded=False,
        foreground_labels=None,
        regions=None,
        ignore_label=None,
    ):
        pipeline = super().get_validation_transforms(
            deep_supervision_scales, is_cascaded, foreground_labels, regions, ignore_label
        )
        return protect_guidance_channels(
            pipeline, len(self.dataset_json["channel_names"]), [BOX_CHANNEL]
        )


class nnUNetTrainerPointTeacher(_TeacherBase):
    """Point-guided teacher (ablation): sees the CT channel only, trained on tumour-centred patches;
    at inference its region is centred on the box centre, without the box extent."""

    @classmethod
    def _build_network(cls, request: NetworkRequest) -> nn.Module:
        return SelectChannels(request.plain_unet(1), (0,))


class _PaperTeacher(PaperSetupMixin, DiceLossMixin):
    prelu_network = True
    max_stages = 4  # 3 down-samplings

    def _nnts_setup(self) -> None:
        super()._nnts_setup()
        self._paper_patch_size(self.max_stages)


class nnUNetTrainerBoxTeacher_Paper(_PaperTeacher, nnUNetTrainerBoxTeacher):
    """Box teacher with the paper's setup (3 down-samplings, PReLU, Dice, Adam 1e-4, batch 1 x 8, early stopping)."""


class nnUNetTrainerPointTeacher_Paper(_PaperTeacher, nnUNetTrainerPointTeacher):
    """Point teacher with the paper's setup."""
