"""Time per training iteration of our trainers against nnU-Net's ``nnUNetTrainer`` on the same plans,
measured in one process as ratios; optionally one sliding-window inference per student on a
realistic-size phantom (untrained weights: inference time does not depend on them).

    python benchmarks/bench_trainers.py --work /tmp/bench_trainers [--device cuda] [--iterations 20]
        [--patch 32 64 64 --features 16 32 64 128] [--inference-size 256 256 200]

Builds a phantom study (``nnts synth``), the SO/DO student datasets and a teacher dataset, plans
and preprocesses them with nnU-Net, adds a configuration with the given patch/features, then times
``train_step`` (forward, loss, backward, optimiser step) on the same pre-loaded augmented batches for
every trainer, in interleaved rounds (ratio per round, median over rounds). Prints a table and writes
``results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

TRAINERS = {  # trainer -> dataset key
    "nnUNetTrainer": "so",
    "nnUNetTrainerSOStudent": "so",
    "nnUNetTrainerDOStudent": "do",
    "nnUNetTrainerSOStudent_Paper": "so",
    "nnUNetTrainerDOStudent_Paper": "do",
    "nnUNetTrainerBoxTeacher": "teacher",
    "nnUNetTrainerBoxTeacher_Paper": "teacher",
}
IDS = {"strong": 801, "teacher": 802, "so": 803, "do": 804}
CONFIG = "3d_bench"


def setup(work: Path, args) -> None:
    from nnunet_teacher_student.phantom.datasets import write_phantom_datasets
    from nnunet_teacher_student.phantom.settings import PhantomSettings
    from nnunet_teacher_student.nnunet.plans import add_small_configuration, ext_trainer_dir
    from nnunet_teacher_student.students.student_dataset import make_student_dataset
    from nnunet_teacher_student.students.settings import StudentDatasetSettings
    from nnunet_teacher_student.teacher.teacher_dataset import make_teacher_dataset
    from nnunet_teacher_student.teacher.settings import TeacherDatasetSettings

    for k in ("raw", "preprocessed", "results"):
        (work / k).mkdir(parents=True, exist_ok=True)
    os.environ.update(
        nnUNet_raw=str(work / "raw"),
        nnUNet_preprocessed=str(work / "preprocessed"),
        nnUNet_results=str(work / "results"),
        nnUNet_extTrainer=str(ext_trainer_dir()),
    )
    if not list((work / "preprocessed").glob(f"Dataset{IDS['do']}_*/nnUNetPlans.json")):
        write_phantom_datasets(
            PhantomSettings(
                work / "phantom",
                IDS["strong"],
                n_strong=args.cases,
                n_weak=0,
                n_test=0,
                seed=0,
                preset=args.preset,
                raw_dir=work / "raw",
                overwrite=True,
            )
        )
        make_teacher_dataset(
            TeacherDatasetSettings(IDS["strong"], IDS["teacher"], "BenchTeacher", overwrite=True)
        )
        make_student_dataset(
            StudentDatasetSettings(IDS["strong"], IDS["so"], "BenchSO", "so", overwrite=True)
        )
        make_student_dataset(
            StudentDatasetSettings(IDS["strong"], IDS["do"], "BenchDO", "do", overwrite=True)
        )
        ids = [str(IDS[k]) for k in ("teacher", "so", "do")]
        subprocess.run(
            [
                str(Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess"),
                "-d",
                *ids,
                "-c",
                "3d_fullres",
                "-npfp",
                str(args.np),
                "-np",
                str(args.np),
            ],
            check=True,
        )
    for k in ("teacher", "so", "do"):
        add_small_configuration(
            IDS[k], CONFIG, tuple(args.patch), tuple(args.features), args.batch_size
        )


def make_trainer(name: str, dataset: str, device):
    import torch
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_teacher_student.nnunet.plans import nnunet_dir

    pre = next(nnunet_dir("nnUNet_preprocessed").glob(f"Dataset{IDS[dataset]}_*"))
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False
    cls = recursive_find_trainer_class_by_name(name)
    trainer = cls(
        plans,
        CONFIG,
        0,
        json.loads((pre / "dataset.json").read_text()),
        device=torch.device(device),
    )
    trainer.initialize()
    return trainer


class TimedTrainer:
    """One trainer, initialised, with a few pre-loaded augmented batches (data loading is nnU-Net's for
    every trainer, so it is left out of the timing)."""

    def __init__(self, name: str, dataset: str, device: str, n_batches: int):
        self.name, self.device = name, device
        self.trainer = make_trainer(name, dataset, device)
        self.trainer.on_train_start()  # dataloaders, optimiser, logging
        self.batches = [next(self.trainer.dataloader_train) for _ in range(n_batches)]
        self.trainer.network.train()
        self.done = 0
        self.seconds: list[float] = []  # per round: seconds per iteration

    def steps(self, n: int) -> float:
        """Run ``n`` train steps (forward, loss, backward, optimiser); return the seconds per step."""
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            self.trainer.train_step(self.batches[self.done % len(self.batches)])
            self.done += 1
        if self.device == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / n


def time_training(
    names: list[str], device: str, iterations: int, warmup: int, rounds: int
) -> dict[str, list[float]]:
    """Seconds per train step of every trainer, timed in interleaved rounds (each round runs every trainer
    for ``iterations // rounds`` steps) so that a change of load on the machine reaches all trainers alike
    (timing them one after another made the ratios drift with the load). Returns per-round figures."""
    timed = [TimedTrainer(n, TRAINERS[n], device, min(iterations, 8)) for n in names]
    for t in timed:
        t.steps(warmup)
    per_round = max(1, iterations // rounds)
    for _ in range(rounds):
        for t in timed:
            t.seconds.append(t.steps(per_round))
    for t in timed:
        t.trainer.on_train_end()
    return {t.name: t.seconds for t in timed}


def time_inference(name: str, dataset: str, device: str, size_xyz) -> float:
    """One sliding-window prediction (with nnU-Net's TTA) of a phantom-like volume of ``size_xyz``."""
    import numpy as np
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    trainer = make_trainer(name, dataset, device)
    trainer.set_deep_supervision_enabled(False)
    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_mirroring=True,
        device=torch.device(device),
        perform_everything_on_device=device == "cuda",
        allow_tqdm=False,
    )
    predictor.manual_initialization(
        trainer.network,
        trainer.plans_manager,
        trainer.configuration_manager,
        [trainer.network.state_dict()],
        trainer.dataset_json,
        type(trainer).__name__,
        (0, 1, 2),
    )
    rng = np.random.default_rng(0)
    n_channels = len(trainer.dataset_json["channel_names"])
    x = rng.normal(-700, 200, (n_channels, *size_xyz[::-1])).astype(np.float32)
    spacing = [1.5, 1.0, 1.0]
    t0 = time.perf_counter()
    predictor.predict_single_npy_array(x, {"spacing": spacing}, None, None, False)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/nnts_bench_trainers"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="interleaved timing rounds (iterations are split over them)",
    )
    p.add_argument("--cases", type=int, default=6)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--patch", type=int, nargs=3, default=[16, 32, 32])
    p.add_argument("--features", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--np", type=int, default=1, help="processes for nnU-Net preprocessing")
    p.add_argument("--trainers", nargs="+", default=list(TRAINERS))
    p.add_argument(
        "--inference-size",
        type=int,
        nargs=3,
        default=None,
        metavar=("X", "Y", "Z"),
        help="also time one inference per student on a volume of this size (voxels)",
    )
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    setup(args.work, args)
    os.environ.setdefault("nnUNet_n_proc_DA", "0")  # after planning: nnU-Net's planning breaks on 0
    results = {
        "date": date.today().isoformat(),
        "machine": platform.node(),
        "device": args.device,
        "command": " ".join(sys.argv),
        "patch": args.patch,
        "features": args.features,
        "batch_size": args.batch_size,
        "iterations": args.iterations,
    }
    if args.device == "cuda":
        import torch

        results["gpu"] = torch.cuda.get_device_name(0)
    rounds = time_training(args.trainers, args.device, args.iterations, args.warmup, args.rounds)
    results["seconds_per_round"] = rounds
    results["seconds_per_iteration"] = {k: statistics.median(v) for k, v in rounds.items()}
    base = rounds.get("nnUNetTrainer")  # ratio per round (same load), then the median over rounds
    ratios = {k: [a / b for a, b in zip(v, base)] for k, v in rounds.items()} if base else {}
    results["ratio_to_nnUNetTrainer"] = {k: statistics.median(r) for k, r in ratios.items()}
    results["ratio_range"] = {k: [min(r), max(r)] for k, r in ratios.items()}
    if args.inference_size:
        results["inference_seconds"] = {
            name: time_inference(name, TRAINERS[name], args.device, args.inference_size)
            for name in ("nnUNetTrainer", "nnUNetTrainerSOStudent", "nnUNetTrainerDOStudent")
        }
        results["inference_size_xyz"] = args.inference_size
    out = args.out or args.work / "results.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"\n{'trainer':36s} {'s/iter':>8s} {'ratio':>6s} {'ratio range':>12s}")
    for k, v in results["seconds_per_iteration"].items():
        lo, hi = results["ratio_range"].get(k, (float("nan"), float("nan")))
        print(
            f"{k:36s} {v:8.4f} {results['ratio_to_nnUNetTrainer'].get(k, float('nan')):6.2f} {lo:5.2f}-{hi:4.2f}"
        )
    for k, v in results.get("inference_seconds", {}).items():
        print(f"inference {k:26s} {v:8.2f} s  ({'x'.join(map(str, args.inference_size))} voxels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
