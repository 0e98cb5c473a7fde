"""Pieces shared by all our trainers: run budgets, an ignore-aware Dice loss, the paper's setup.

Budgets: nnU-Net's defaults (1000 epochs x 250 iterations) stay unless the budget variables of
:mod:`..core.env` are set, so the literal ``nnUNetv2_train`` command can run a short experiment.

The seed variable seeds Python's, numpy's and torch's generators before the network is built, so the
weights' initialisation and nnU-Net's data loading and augmentation (in the main process:
``nnUNet_n_proc_DA=0``) repeat; on a CPU the same command then gives the same checkpoint.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.helpers import dummy_context, softmax_helper_dim1
from torch import autocast, nn

from ..core import env
from ..core.env import env_flag, env_int


SEED_ENV = env.SEED


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class nnUNetTrainerNNTS(nnUNetTrainer):
    """nnU-Net's default trainer plus the ``NNTS_*`` budget variables: the fair baseline for our
    comparisons (same budget as our trainers, nothing else changed)."""

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),
    ):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = env_int(env.EPOCHS) or self.num_epochs
        self.num_iterations_per_epoch = env_int(env.ITERATIONS) or self.num_iterations_per_epoch
        self.num_val_iterations_per_epoch = (
            env_int(env.VAL_ITERATIONS) or self.num_val_iterations_per_epoch
        )
        # checkpoint_latest about ten times per run (nnU-Net: every 50 epochs), so that an interrupted short run
        # resumes with `nnUNetv2_train ... --c` instead of starting over
        self.save_every = max(1, min(self.save_every, self.num_epochs // 10))
        self.nnts_seed = env_int(SEED_ENV)
        if self.nnts_seed is not None:
            seed_everything(self.nnts_seed)
        self._nnts_setup()

    def _nnts_setup(self) -> None:
        """The end of ``__init__``: a subclass sets its options here (``super()._nnts_setup()`` first), so that
        nnU-Net's ``__init__`` signature is written once."""

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, written to a temporary file and renamed: a run killed while saving keeps the
        previous checkpoint intact, so ``--c`` can resume from it."""
        tmp = f"{filename}.tmp"
        super().save_checkpoint(tmp)
        if os.path.isfile(tmp):  # only rank 0 writes
            os.replace(tmp, filename)

    def on_train_start(self):
        super().on_train_start()
        if self.nnts_seed is not None:
            self.print_to_log_file(f"{SEED_ENV}={self.nnts_seed}: Python, numpy and torch seeded")

    def perform_actual_validation(self, save_probabilities: bool = False):
        """nnU-Net's final validation, unless ``NNTS_SKIP_VALIDATION=1``: it starts a spawned export worker
        (10-15 s of imports on a small CPU), a large share of a short training run, and workflows that
        score a separate test set (``nnts demo``/``benchmark``) do not read it."""
        if env_flag(env.SKIP_VALIDATION):
            self.print_to_log_file(
                "NNTS_SKIP_VALIDATION=1: nnU-Net's final validation skipped "
                "(run `nnUNetv2_train ... --val` to do it later)"
            )
            return
        super().perform_actual_validation(save_probabilities)

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch, mirror_axes = (
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        )
        if env_flag(env.NO_MIRRORING):
            mirror_axes = None
            self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch, mirror_axes


class IgnoreAwareDiceLoss(nn.Module):
    """Soft Dice (nnU-Net's ``MemoryEfficientSoftDiceLoss``) that excludes ignore-label voxels.

    Labels: ``target`` holds label values; voxels equal to ``ignore_label`` are masked out.
    Regions: nnU-Net appends the ignore mask as the last target channel; it is masked out too.
    Smooth 1e-5 keeps empty targets finite (empty target + empty prediction -> loss ~ 0).
    """

    def __init__(self, regions: bool, ignore_label: int | None, batch_dice: bool, ddp: bool):
        super().__init__()
        self.regions = regions
        self.ignore_label = ignore_label
        self.dice = MemoryEfficientSoftDiceLoss(
            apply_nonlin=torch.sigmoid if regions else softmax_helper_dim1,
            batch_dice=batch_dice,
            do_bg=regions,
            smooth=1e-5,
            ddp=ddp,
        )

    def forward(self, net_output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mask = None
        if self.ignore_label is not None:
            if self.regions:
                mask = 1 - target[:, -1:].bool().to(net_output.dtype)
                target = target[:, :-1]
            else:
                valid = target != self.ignore_label
                target = torch.where(valid, target, 0)
                mask = valid.to(net_output.dtype)
        return self.dice(net_output, target, loss_mask=mask)


def deep_supervision_weights(num_scales: int) -> np.ndarray:
    """nnU-Net's weighting: halve per scale, drop the lowest, normalise."""
    w = np.array([1 / (2**i) for i in range(num_scales)])
    w[-1] = 0
    return w / w.sum()


class DiceLossMixin:
    """Dice loss only (the paper's loss), ignore-label aware, with deep supervision when enabled."""

    def _build_loss(self):
        loss = IgnoreAwareDiceLoss(
            self.label_manager.has_regions,
            self.label_manager.ignore_label,
            self.configuration_manager.batch_dice,
            self.is_ddp,
        )
        if self.enable_deep_supervision:
            loss = DeepSupervisionWrapper(
                loss, deep_supervision_weights(len(self._get_deep_supervision_scales()))
            )
        return loss


class EarlyStopping(Exception):
    """Raised at the end of an epoch when validation Dice stopped improving."""


class PaperSetupMixin:
    """The paper's optimisation: Adam 1e-4 at a constant rate, batch 1 with gradients
    accumulated over 8 iterations, no deep supervision, PReLU networks, early stopping on the
    validation (EMA pseudo) Dice. Combine with :class:`DiceLossMixin`."""

    paper_accumulation_steps = 8
    paper_patience = 50
    paper_patch_edge = 128

    def _nnts_setup(self) -> None:
        super()._nnts_setup()
        self.initial_lr = 1e-4
        self.enable_deep_supervision = False
        self.patience = env_int(env.PATIENCE) or self.paper_patience
        self._accumulated = 0
        self._epochs_without_improvement = 0
        self._best_for_patience = None

    def _set_batch_size_and_oversample(self):
        super()._set_batch_size_and_oversample()
        self.batch_size = 1

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.network.parameters(), lr=self.initial_lr)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs, exponent=0.0)

    def train_step(self, batch: dict) -> dict:
        """One batch; the optimiser steps every ``paper_accumulation_steps`` batches."""
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        target = (
            [t.to(self.device, non_blocking=True) for t in target]
            if isinstance(target, list)
            else target.to(self.device, non_blocking=True)
        )
        steps = self.paper_accumulation_steps
        with (
            autocast(self.device.type, enabled=True)
            if self.device.type == "cuda"
            else dummy_context()
        ):
            loss = self.loss(self.network(data), target)
        scaled = loss / steps
        (self.grad_scaler.scale(scaled) if self.grad_scaler is not None else scaled).backward()
        self._accumulated += 1
        if self._accumulated % steps == 0:
            if self.grad_scaler is not None:
                self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            if self.grad_scaler is not None:
                self.grad_scaler.step(self.optimizer)
                self.grad_scaler.update()
            else:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return {"loss": loss.detach().cpu().numpy()}

    def on_epoch_end(self):
        super().on_epoch_end()
        dice = self.logger.get_value("ema_fg_dice", step=-1)
        if self._best_for_patience is None or dice > self._best_for_patience:
            self._best_for_patience = dice
            self._epochs_without_improvement = 0
        else:
            self._epochs_without_improvement += 1
        if self._epochs_without_improvement >= self.patience:
            self.print_to_log_file(
                f"Early stopping: no better EMA pseudo Dice for {self.patience} epochs "
                f"(best {self._best_for_patience:.4f})"
            )
            raise EarlyStopping()

    def run_training(self):
        try:
            super().run_training()
        except EarlyStopping:
            self.on_train_end()

    def _paper_patch_size(self, num_stages: int) -> None:
        """Crop edge ``paper_patch_edge`` (128) where the planned patch is larger, kept divisible
        by the network's total stride."""
        cfg = self.configuration_manager.configuration
        strides = np.prod(
            np.array(cfg["architecture"]["arch_kwargs"]["strides"][:num_stages]), axis=0
        )
        patch = [
            int(min(p, max(s, self.paper_patch_edge // s * s)))
            for p, s in zip(cfg["patch_size"], strides)
        ]
        cfg["patch_size"] = patch
