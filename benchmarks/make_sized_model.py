"""An untrained nnU-Net model folder of clinical size, for speed and memory benchmarks only (issue 18: the demo's
models have a 16 x 32 x 32 patch, so their tile counts on a real chest CT are not those of a clinical model)::

    python benchmarks/make_sized_model.py --like TRAINED_MODEL_FOLDER --out FOLDER \\
        [--spacing 1.24 0.79 0.79] [--patch 80 192 160] [--seed 0]

The folder takes ``dataset.json``, ``dataset_fingerprint.json`` and ``plans.json`` of ``--like`` (CT normalisation,
labels), with its ``3d_fullres`` configuration set to ``--spacing`` (z, y, x mm) and ``--patch`` and nnU-Net's plain
U-Net sized by nnU-Net's rules for that patch (a stride of 2 per axis while the feature map stays >= 4 voxels, at
most 6 stages, 32 features doubling to 320). The defaults are an MSD-Lung-like plan. ``fold_all/checkpoint_final.pth``
holds the network's seeded random initialisation: its masks mean nothing, its network passes cost what a trained
model's do.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nnunet_teacher_student.core.files import write_text_atomic  # noqa: E402


def unet_kwargs(patch: list[int], base: dict) -> dict:
    """``base``'s architecture arguments resized for ``patch`` by nnU-Net's rules (see the module docstring)."""
    strides, size = [[1, 1, 1]], list(patch)
    while len(strides) < 6:
        step = [2 if s // 2 >= 4 else 1 for s in size]
        if step == [1, 1, 1]:
            break
        strides.append(step)
        size = [s // st for s, st in zip(size, step)]
    n = len(strides)
    kw = dict(base)
    kw.update(
        n_stages=n,
        features_per_stage=[min(32 * 2**i, 320) for i in range(n)],
        kernel_sizes=[[3, 3, 3]] * n,
        strides=strides,
        n_conv_per_stage=[2] * n,
        n_conv_per_stage_decoder=[2] * (n - 1),
    )
    return kw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--like", type=Path, required=True, help="a trained model folder (its dataset and plans)"
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--spacing", type=float, nargs=3, default=[1.24, 0.79, 0.79], help="z y x, mm")
    ap.add_argument("--patch", type=int, nargs=3, default=[80, 192, 160], help="z y x, voxels")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("dataset.json", "dataset_fingerprint.json"):
        shutil.copy(args.like / name, args.out / name)
    plans = json.loads((args.like / "plans.json").read_text())
    conf = plans["configurations"]["3d_fullres"]
    conf.update(spacing=args.spacing, patch_size=args.patch, batch_size=2)
    conf["architecture"]["arch_kwargs"] = unet_kwargs(
        args.patch, conf["architecture"]["arch_kwargs"]
    )
    plans["configurations"] = {"3d_fullres": conf}
    write_text_atomic(json.dumps(plans, indent=2), args.out / "plans.json")

    dataset_json = json.loads((args.out / "dataset.json").read_text())
    pm = PlansManager(plans)
    cm = pm.get_configuration("3d_fullres")
    torch.manual_seed(args.seed)
    net = nnUNetTrainer.build_network_architecture(
        pm,
        cm,
        determine_num_input_channels(pm, cm, dataset_json),
        pm.get_label_manager(dataset_json).num_segmentation_heads,
        enable_deep_supervision=False,
    )
    fold = args.out / "fold_all"
    fold.mkdir(exist_ok=True)
    torch.save(
        {
            "network_weights": net.state_dict(),
            "trainer_name": "nnUNetTrainer",
            "init_args": {"configuration": "3d_fullres", "fold": "all"},
            "inference_allowed_mirroring_axes": (0, 1, 2),
        },
        fold / "checkpoint_final.pth",
    )
    n_params = sum(p.numel() for p in net.parameters())
    print(
        f"{args.out}: untrained 3d_fullres, spacing {args.spacing}, patch {args.patch}, "
        f"{cm.network_arch_init_kwargs['n_stages']} stages, {n_params / 1e6:.1f} M parameters (seed {args.seed})"
    )


if __name__ == "__main__":
    main()
