"""Networks (PReLU U-Net, dual-output U-Net, binarised box input), guidance transforms and losses."""

from __future__ import annotations

import pickle

import pytest
import torch
from batchgeneratorsv2.transforms.intensity.gaussian_noise import GaussianNoiseTransform
from torch import nn

from nnunet_teacher_student.trainers import (
    nnUNetTrainerBoxTeacher,
    nnUNetTrainerDOStudent,
    nnUNetTrainerSOStudent_Paper,
)
from nnunet_teacher_student.trainers.base import IgnoreAwareDiceLoss
from nnunet_teacher_student.trainers.box_input import BoxPrior
from nnunet_teacher_student.trainers.networks import (
    DualDecoderUNet,
    plain_unet,
    truncate_stages,
    with_prelu,
)
from nnunet_teacher_student.trainers.transforms import BinarizeChannels, OnlyChannels

KW = dict(
    n_stages=3,
    features_per_stage=[4, 8, 16],
    conv_op=nn.Conv3d,
    kernel_sizes=[[3, 3, 3]] * 3,
    strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]],
    n_conv_per_stage=[1, 1, 1],
    n_conv_per_stage_decoder=[1, 1],
    conv_bias=True,
    norm_op=nn.InstanceNorm3d,
    norm_op_kwargs={"eps": 1e-5, "affine": True},
    dropout_op=None,
    dropout_op_kwargs=None,
    nonlin=nn.LeakyReLU,
    nonlin_kwargs={"inplace": True},
)


def test_dual_output_shapes_at_every_scale_match_the_single_output_unet():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 16, 32, 32)
    do = DualDecoderUNet(1, True, **with_prelu(KW))
    so = plain_unet(with_prelu(KW), 1, 2, True)
    outs, ref = do(x), so(x)
    assert isinstance(outs, list) and len(outs) == len(ref) == 2
    for o, r in zip(outs, ref):
        assert o.shape == r.shape and o.shape[1] == 2
    assert any(isinstance(m, nn.PReLU) for m in do.modules())
    assert not any(isinstance(m, nn.LeakyReLU) for m in do.modules())
    do.decoder.deep_supervision = False
    single = do(x)
    assert torch.is_tensor(single) and single.shape == (2, 2, 16, 32, 32)
    assert not do.decoder.box.deep_supervision


def test_both_decoders_and_the_shared_encoder_receive_gradients():
    torch.manual_seed(0)
    net = DualDecoderUNet(1, True, **with_prelu(KW))
    loss = sum(o.square().mean() for o in net(torch.randn(1, 1, 16, 32, 32)))
    loss.backward()
    for part in (net.encoder, net.decoder.tumour, net.decoder.box):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0


def test_truncate_stages_keeps_the_first_stages():
    kw = truncate_stages(KW, 2)
    assert (
        kw["n_stages"] == 2
        and kw["strides"] == KW["strides"][:2]
        and kw["n_conv_per_stage_decoder"] == [1]
    )
    assert truncate_stages(KW, 9) == KW


def test_box_prior_network_thresholds_the_box_channel_only():
    torch.manual_seed(0)
    net = BoxPrior(plain_unet(KW, 2, 2, False), 1, (0, 2, 2)).eval()
    ct = torch.randn(1, 1, 16, 32, 32)
    box = torch.zeros(1, 1, 16, 32, 32)
    box[..., 4:10, 8:20, 8:20] = 1
    smeared = box * 0.8 + 0.15 * torch.rand_like(box)  # what cubic resampling leaves: not 0/1
    with torch.no_grad():
        assert torch.equal(net(torch.cat([ct, smeared], 1)), net(torch.cat([ct, box], 1)))
        assert not torch.equal(net(torch.cat([ct * 1.1, box], 1)), net(torch.cat([ct, box], 1)))


def test_intensity_transform_leaves_the_box_channel_untouched_and_binarize_restores_it():
    img = torch.zeros(2, 8, 8, 8)
    img[0] = torch.randn(8, 8, 8)
    img[1, 2:5, 2:5, 2:5] = 1
    noisy = OnlyChannels(GaussianNoiseTransform(noise_variance=(0.5, 0.5), p_per_channel=1), [0])(
        image=img.clone()
    )
    assert torch.equal(noisy["image"][1], img[1]) and not torch.equal(noisy["image"][0], img[0])
    smeared = img.clone()
    smeared[1] = smeared[1] * 0.9 + 0.05
    assert torch.equal(BinarizeChannels([1])(image=smeared)["image"][1], img[1])


@pytest.mark.parametrize("regions", [False, True])
def test_dice_loss_is_finite_on_empty_targets_and_ignores_the_ignore_label(regions):
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 8, 8, 8, requires_grad=True)
    if regions:  # two region channels + the ignore channel nnU-Net appends
        target = torch.zeros(2, 3, 8, 8, 8)
        loss = IgnoreAwareDiceLoss(True, 3, batch_dice=False, ddp=False)
    else:
        target = torch.zeros(2, 1, 8, 8, 8)
        loss = IgnoreAwareDiceLoss(False, 2, batch_dice=False, ddp=False)
    value = loss(logits, target)  # empty targets
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    # voxels under the ignore label do not change the loss, whatever the prediction there
    labelled = target.clone()
    labelled[:, 1 if regions else 0, 5:] = 1  # a tumour away from the ignored block
    if regions:
        labelled[:, 0, 5:] = 1  # region "box" contains the tumour
        labelled[:, 2, :4] = 1
    else:
        labelled[:, 0, :4] = 2
    base = loss(logits.detach(), labelled)
    in_ignored = logits.detach().clone()
    in_ignored[:, :, :4] = 50.0
    in_labelled = logits.detach().clone()
    in_labelled[:, :, 5:] = -50.0
    assert torch.isfinite(base) and torch.allclose(base, loss(in_ignored, labelled), atol=1e-5)
    assert not torch.allclose(base, loss(in_labelled, labelled), atol=1e-2)


@pytest.mark.parametrize(
    "cls", [nnUNetTrainerBoxTeacher, nnUNetTrainerDOStudent, nnUNetTrainerSOStudent_Paper]
)
def test_trainer_classes_and_networks_pickle(cls):
    assert pickle.loads(pickle.dumps(cls)) is cls
    net = DualDecoderUNet(1, True, **with_prelu(KW))
    clone = pickle.loads(pickle.dumps(net))
    x = torch.randn(1, 1, 16, 32, 32)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(net.eval()(x), clone.eval()(x)))
