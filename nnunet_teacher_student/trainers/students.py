"""Student trainers: fully automatic (CT in, mask out).

- ``nnUNetTrainerSOStudent``: single output, PReLU strided-conv U-Net, nnU-Net's CE + Dice loss.
- ``nnUNetTrainerDOStudent``: dual output (shared encoder, tumour and box decoders) trained on the
  DO dataset's regions ``box = (1, 2)``, ``tumor = (2,)`` with sigmoid outputs and nnU-Net's
  BCE + Dice on both.
- ``_Paper`` variants and ``nnUNetTrainerBaseline_Paper`` (SO paper network on strong data only): the
  paper's Dice-only loss. Dice alone over-segmented on phantoms (BENCHMARKS.md), so the default
  students keep nnU-Net's loss.
"""

from __future__ import annotations

from torch import nn

from .base import DiceLossMixin, PaperSetupMixin, nnUNetTrainerNNTS
from .networks import DualDecoderUNet, NetworkRequest, PlannedNetworkMixin
from .sampling import SizeBalancedSamplingMixin


class _StudentBase(SizeBalancedSamplingMixin, PlannedNetworkMixin, nnUNetTrainerNNTS):
    prelu_network = True


class nnUNetTrainerSOStudent(_StudentBase):
    """Single-output student on the SO dataset (labels background/tumor)."""

    @classmethod
    def _build_network(cls, request: NetworkRequest) -> nn.Module:
        return request.plain_unet()


class nnUNetTrainerDOStudent(_StudentBase):
    """Dual-output student on the DO dataset; ``nnUNetv2_predict`` writes label 2 for tumour, 1 for box."""

    def initialize(self):
        if not self.label_manager.has_regions or self.label_manager.num_segmentation_heads != 2:
            raise RuntimeError(
                f"{type(self).__name__} needs the DO student dataset (regions box=[1, 2], tumor=2); dataset "
                f"{self.plans_manager.dataset_name} has labels {self.dataset_json.get('labels')}. "
                "Create it with `nnts make-student-dataset --form do`."
            )
        super().initialize()

    @classmethod
    def _build_network(cls, request: NetworkRequest) -> nn.Module:
        if request.num_output_channels != 2:
            raise RuntimeError(
                "the DO network has 2 outputs (box, tumour regions), asked for "
                f"{request.num_output_channels}"
            )
        return DualDecoderUNet(
            request.num_input_channels, request.enable_deep_supervision, **request.arch_kwargs
        )


class _PaperStudent(PaperSetupMixin, DiceLossMixin):
    max_stages = 5  # 4 down-samplings


class nnUNetTrainerSOStudent_Paper(_PaperStudent, nnUNetTrainerSOStudent):
    """SO student with the paper's setup (4 down-samplings, Adam 1e-4, batch 1 x 8, Dice, early stopping)."""


class nnUNetTrainerDOStudent_Paper(_PaperStudent, nnUNetTrainerDOStudent):
    """DO student with the paper's setup."""


class nnUNetTrainerBaseline_Paper(nnUNetTrainerSOStudent_Paper):
    """The paper's baseline: the SO paper network, to be trained on the strong dataset only."""
