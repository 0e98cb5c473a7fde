"""Helpers shared by the tests: run nnU-Net's literal commands in subprocesses, plan datasets, train."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_teacher_student.workflow.processes import nnunet_command  # noqa: F401  (the tests import it from here)

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SMALL_CONFIG = "3d_small"
STRONG_ID, TEACHER_ID, SO_ID, DO_ID = 501, 502, 503, 504


def run_nnunet(
    args: list[str],
    timeout: int = 1800,
    training: bool = False,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run an nnU-Net (or nnts) console command; fail the test with its output on error."""
    env = {**os.environ, **(extra_env or {})}
    if training:
        env["nnUNet_n_proc_DA"] = "0"  # planning breaks on 0, training on a CPU wants it
    cmd = [nnunet_command(args[0])] + args[1:]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def plan_and_preprocess(*dataset_ids: int) -> None:
    """nnU-Net's own planning + preprocessing (3d_fullres), then our small configuration."""
    from nnunet_teacher_student.nnunet.plans import add_small_configuration

    ids = [str(i) for i in dataset_ids]
    run_nnunet(
        [
            "nnUNetv2_plan_and_preprocess",
            "-d",
            *ids,
            "-c",
            "3d_fullres",
            "-npfp",
            "1",
            "-np",
            "1",
            "--verify_dataset_integrity",
        ]
    )
    for i in dataset_ids:
        add_small_configuration(i, SMALL_CONFIG)


def train(dataset_id: int, trainer: str, fold: int = 0, validate: bool = True) -> Path:
    """``nnUNetv2_train DATASET 3d_small FOLD -tr TRAINER -device cpu``; returns the model folder.
    ``validate=False`` skips nnU-Net's final validation (``NNTS_SKIP_VALIDATION=1``)."""
    from nnunet_teacher_student.nnunet.plans import dataset_folder_name

    run_nnunet(
        [
            "nnUNetv2_train",
            str(dataset_id),
            SMALL_CONFIG,
            str(fold),
            "-tr",
            trainer,
            "-device",
            "cpu",
        ],
        training=True,
        extra_env=None if validate else {"NNTS_SKIP_VALIDATION": "1"},
    )
    name = dataset_folder_name(dataset_id, Path(os.environ["nnUNet_results"]))
    folder = Path(os.environ["nnUNet_results"]) / name / f"{trainer}__nnUNetPlans__{SMALL_CONFIG}"
    assert (folder / f"fold_{fold}" / "checkpoint_final.pth").is_file()
    return folder


def kill9_when(
    args: list[str], ready, env: dict[str, str] | None = None, timeout: float = 600
) -> bool:
    """Start ``args`` in its own process group, wait until ``ready()`` is true, then SIGKILL the whole
    group (children included). Returns False when the command finished before ``ready()`` held."""
    import signal
    import time

    proc = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=REPO,
    )
    t0 = time.monotonic()
    try:
        while not ready():
            if proc.poll() is not None:
                return False
            if time.monotonic() - t0 > timeout:
                pytest.fail(f"{args}: not ready after {timeout} s")
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return True
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def nnts_cli(*args: str) -> list[str]:
    """The ``nnts`` command line of this environment."""
    return [sys.executable, "-m", "nnunet_teacher_student.cli", *args]
