"""Networks built from nnU-Net's planned topology and dynamic-network-architectures' blocks.

- PReLU U-Net with strided-convolution down-sampling (``PlainConvUNet`` with PReLU: its encoder
  already down-samples with strided convolutions, as the paper's networks do).
- :class:`DualDecoderUNet`: one shared encoder, a tumour decoder and a box decoder; their
  outputs are concatenated as ``[box, tumour]`` at every deep-supervision scale (the channel
  order of nnU-Net's regions ``[(1, 2), (2,)]``).
- The box teacher's input thresholding and box prior: :class:`~.box_channel.BoxPrior`.
- :class:`PlannedNetworkMixin`: our trainers' one ``build_network_architecture`` (each trainer builds its
  network from a :class:`NetworkRequest`).
"""

from __future__ import annotations

import pydoc
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

PER_STAGE_KEYS = ("features_per_stage", "kernel_sizes", "strides", "n_conv_per_stage")


def resolve_arch_kwargs(arch_kwargs: dict, req_import: Sequence[str]) -> dict:
    """Plans store classes as dotted names; import them (as nnU-Net's ``get_network_from_plans`` does)."""
    kwargs = dict(arch_kwargs)
    for key in req_import:
        if isinstance(kwargs.get(key), str):
            kwargs[key] = pydoc.locate(kwargs[key])
    return kwargs


def with_prelu(kwargs: dict) -> dict:
    out = dict(kwargs)
    out["nonlin"] = nn.PReLU
    out["nonlin_kwargs"] = {}
    return out


def truncate_stages(kwargs: dict, max_stages: int | None) -> dict:
    """Keep the first ``max_stages`` resolution stages (``max_stages - 1`` down-samplings)."""
    n = kwargs["n_stages"]
    if max_stages is None or max_stages >= n:
        return dict(kwargs)
    out = dict(kwargs)
    out["n_stages"] = max_stages
    for key in PER_STAGE_KEYS:
        if isinstance(out.get(key), (list, tuple)):
            out[key] = list(out[key])[:max_stages]
    if isinstance(out.get("n_conv_per_stage_decoder"), (list, tuple)):
        out["n_conv_per_stage_decoder"] = list(out["n_conv_per_stage_decoder"])[: max_stages - 1]
    return out


def plain_unet(
    kwargs: dict, input_channels: int, num_outputs: int, deep_supervision: bool
) -> PlainConvUNet:
    """A ``PlainConvUNet`` from resolved plan kwargs, He-initialised like nnU-Net's."""
    kw = {k: v for k, v in kwargs.items() if k != "deep_supervision"}
    net = PlainConvUNet(
        input_channels=input_channels,
        num_classes=num_outputs,
        deep_supervision=deep_supervision,
        **kw,
    )
    net.apply(InitWeights_He(1e-2))
    return net


@dataclass(frozen=True)
class NetworkRequest:
    """What nnU-Net's ``build_network_architecture`` is given, with the planned U-Net's kwargs resolved."""

    plans_manager: Any
    configuration_manager: Any
    num_input_channels: int
    num_output_channels: int
    enable_deep_supervision: bool
    arch_kwargs: dict

    def plain_unet(self, input_channels: int | None = None) -> PlainConvUNet:
        """The planned U-Net on ``input_channels`` input channels (default: all of them)."""
        return plain_unet(
            self.arch_kwargs,
            self.num_input_channels if input_channels is None else input_channels,
            self.num_output_channels,
            self.enable_deep_supervision,
        )


class PlannedNetworkMixin:
    """nnU-Net's ``build_network_architecture``, once for our trainers: the planned U-Net's kwargs (only the
    first ``max_stages`` stages; PReLU when ``prelu_network``) go to the trainer's :meth:`_build_network`."""

    prelu_network = False
    max_stages: int | None = None  # None: the planned topology

    @classmethod
    def build_network_architecture(
        cls,
        plans_manager,
        configuration_manager,
        num_input_channels: int,
        num_output_channels: int,
        enable_deep_supervision: bool = True,
    ) -> nn.Module:
        kwargs = truncate_stages(
            resolve_arch_kwargs(
                configuration_manager.network_arch_init_kwargs,
                configuration_manager.network_arch_init_kwargs_req_import,
            ),
            cls.max_stages,
        )
        if cls.prelu_network:
            kwargs = with_prelu(kwargs)
        return cls._build_network(
            NetworkRequest(
                plans_manager,
                configuration_manager,
                num_input_channels,
                num_output_channels,
                enable_deep_supervision,
                kwargs,
            )
        )

    @classmethod
    def _build_network(cls, request: NetworkRequest) -> nn.Module:
        raise NotImplementedError(f"{cls.__name__} builds no network")


class WrappedNetwork(nn.Module):
    """A module around a network (``net``) that passes its ``decoder`` through: nnU-Net switches deep
    supervision on ``network.decoder``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    @property
    def decoder(self) -> nn.Module:
        return self.net.decoder


class DecoderPair(nn.Module):
    """Holds both decoders; setting ``deep_supervision`` switches both, as nnU-Net expects of ``.decoder``."""

    def __init__(self, tumour: UNetDecoder, box: UNetDecoder):
        super().__init__()
        self.tumour = tumour
        self.box = box

    @property
    def deep_supervision(self) -> bool:
        return self.tumour.deep_supervision

    @deep_supervision.setter
    def deep_supervision(self, enabled: bool) -> None:
        self.tumour.deep_supervision = enabled
        self.box.deep_supervision = enabled


class DualDecoderUNet(nn.Module):
    """Shared encoder, two single-channel decoders; output channels ``[box, tumour]`` (sigmoid logits)."""

    def __init__(self, input_channels: int, deep_supervision: bool = True, **kwargs):
        super().__init__()
        kw = dict(kwargs)
        dec_convs = kw.pop("n_conv_per_stage_decoder")
        nonlin_first = kw.pop("nonlin_first", False)
        self.encoder = PlainConvEncoder(
            input_channels, return_skips=True, nonlin_first=nonlin_first, **kw
        )
        self.decoder = DecoderPair(
            UNetDecoder(self.encoder, 1, dec_convs, deep_supervision, nonlin_first=nonlin_first),
            UNetDecoder(self.encoder, 1, dec_convs, deep_supervision, nonlin_first=nonlin_first),
        )
        self.apply(InitWeights_He(1e-2))

    def forward(self, x: torch.Tensor):
        skips = self.encoder(x)
        tumour = self.decoder.tumour(skips)
        box = self.decoder.box(skips)
        if isinstance(tumour, (list, tuple)):
            return [torch.cat((b, t), dim=1) for b, t in zip(box, tumour)]
        return torch.cat((box, tumour), dim=1)
