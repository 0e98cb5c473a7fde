"""The phantom datasets (``nnts synth``): :func:`write_phantom_datasets` writes a strong nnU-Net raw dataset,
a weak set (CT + axial boxes) and a test set of :func:`~.cases.generate_case` phantoms, plus ``manifest.json``
(case -> split, site, patient, tumour volumes, spacing)."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.files import write_text_atomic
from ..core.geometry import Geometry, write_image_atomic, spacing_zyx
from ..formats.annotator import Annotator, annotator_from
from .cases import SITE_NAMES, SITES, PhantomConfig, generate_case, make_config
from .settings import PhantomSettings


OUT_ITEMS = ("weak", "test", "lungs", "manifest.json", "synth_settings.json")


def _case_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _assign_sites(sites: str | Sequence[str], counts: dict[str, int]) -> dict[str, list[str]]:
    """Per split, the site of each case: ``mixed`` round-robin over all sites, ``paper`` strong from
    MSD/NSCLC, weak from Lung-PET-CT-Dx, test mixed; ``scarce`` strong from MSD only (small, solid, mostly
    central tumours), weak and test mixed; a site name or list: round-robin over those."""
    if isinstance(sites, str):
        if sites == "mixed":
            pools = {k: list(SITE_NAMES) for k in counts}
        elif sites == "scarce":
            pools = {"strong": ["msd"], "weak": list(SITE_NAMES), "test": list(SITE_NAMES)}
        elif sites == "paper":
            pools = {"strong": ["msd", "nsclc"], "weak": ["lpcd"], "test": list(SITE_NAMES)}
        else:
            pools = {k: [sites] for k in counts}
    else:
        pools = {k: list(sites) for k in counts}
    for pool in pools.values():
        bad = [s for s in pool if s not in SITES]
        if bad or not pool:
            raise InputError(
                f"unknown site(s) {bad or pool} (use mixed, scarce, paper, or any of {list(SITES)})"
            )
    return {k: [pools[k][i % len(pools[k])] for i in range(n)] for k, n in counts.items()}


def _build_case(job: dict) -> dict:
    """Generate one case and write it into the staging folders; returns its manifest entry."""
    from ..formats.boxes import BoxSet, boxes_from_mask
    from ..formats.weak_set import WeakSet

    t0 = time.perf_counter()
    seed = job["seed"]
    for attempt in range(1, 9):  # a tumour that fits nowhere is dropped: redraw until enough remain
        case = generate_case(
            seed,
            job["site"],
            config=PhantomConfig(**job["config"]),
            min_tumours=job["min_tumours"],
            n_tumours=job.get("n_tumours"),
        )
        if case.info["n_tumours"] >= job["min_tumours"]:
            break
        seed = _case_seed(job["seed"], attempt)
    else:
        raise RuntimeError(
            f"{job['case']}: could not place {job['min_tumours']} tumour(s) in 8 draws"
        )
    t_gen = time.perf_counter() - t0
    cid, split = job["case"], job["split"]
    stage_raw, stage_out = Path(job["stage_raw"]), Path(job["stage_out"])
    if split == "strong":
        write_image_atomic(case.label, stage_raw / "labelsTr" / f"{cid}.nii.gz")
        write_image_atomic(case.ct, stage_raw / "imagesTr" / f"{cid}_0000.nii.gz")
    elif split == "weak":
        mask = sitk.GetArrayFromImage(case.label)
        boxes = boxes_from_mask(
            mask,
            seed=seed,
            label="tumor",
            annotator=Annotator.from_dict(job["annotator"]),
            spacing_zyx=spacing_zyx(case.ct),
        )
        WeakSet(stage_out / "weak").write_case(
            cid, case.ct, BoxSet(Geometry.of(case.ct), boxes), label=case.label
        )
    else:
        write_image_atomic(case.label, stage_out / "test" / "labels" / f"{cid}.nii.gz")
        write_image_atomic(case.ct, stage_out / "test" / "images" / f"{cid}.nii.gz")
    write_image_atomic(case.lungs, stage_out / "lungs" / f"{cid}.nii.gz")
    info = case.info
    return {
        "case": cid,
        "split": split,
        "site": info["site"],
        "patient": job["patient"],
        "seed": seed,
        "spacing": info["spacing"],
        "size": info["size"],
        "n_tumours": info["n_tumours"],
        "tumour_volumes_ml": [t["volume_ml"] for t in info["tumours"]],
        "tumours": info["tumours"],
        "noise_hu": info["noise_hu"],
        "_seconds_generate": t_gen,
    }


def tumour_free_indices(n: int, fraction: float) -> set[int]:
    """Which of a split's ``n`` cases are tumour-free: ``round(fraction * n)`` of them, evenly spread and each
    one step further (``i n / k + i``), so that the round-robin sites share them."""
    k = int(round(fraction * n))
    chosen = {min(int(i * n / k) + i, n - 1) for i in range(k)} if k else set()
    spare = (i for i in range(n) if i not in chosen)
    while len(chosen) < k:  # the steps ran into the end: the first free cases
        chosen.add(next(spare))
    return chosen


def _resolve_raw(raw_dir: str | os.PathLike | None) -> Path:
    raw = raw_dir or os.environ.get("nnUNet_raw")
    if not raw:
        raise InputError(
            "no nnU-Net raw folder: set the nnUNet_raw environment variable or pass --raw DIR"
        )
    return Path(raw)


def write_phantom_datasets(settings: PhantomSettings) -> dict:
    """Write the strong nnU-Net raw dataset, ``out_dir/weak`` (boxes, true labels kept in ``labels/``),
    ``out_dir/test`` (images + labels), ``out_dir/lungs`` (true lung masks of every case) and
    ``out_dir/manifest.json``; everything is staged in temporary folders and moved in place at the end.

    Every strong and weak case has at least one tumour, test cases 0-3 drawn per site; with ``tumour_free``
    (a fraction) every split instead has exactly ``round(tumour_free * n)`` tumour-free cases and the rest at
    least one tumour each, so that training sets hold tumour-free CTs in the test set's proportion. The weak
    boxes are drawn by ``annotator`` (default: the default annotator model), recorded in
    ``synth_settings.json``.

    Returns a summary (paths, counts, seconds per case). Refuses existing outputs unless ``overwrite``.
    """
    from tqdm import tqdm

    s = settings
    annotator = annotator_from(s.annotator)
    cfg = make_config(s.preset, s.scale, **{"family": s.family, **s.config_overrides})
    _check_settings(s)
    raw, out = _resolve_raw(s.raw_dir), Path(s.out_dir)
    target = raw / f"Dataset{s.dataset_id:03d}_{s.dataset_name}"
    existing = _existing_outputs(s, raw, out, target)
    counts = {"strong": s.n_strong, "weak": s.n_weak, "test": s.n_test}
    site_of = _assign_sites(s.sites, counts)
    raw.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    stage_raw = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=raw))
    stage_out = Path(tempfile.mkdtemp(prefix=".synth.", dir=out))
    shared = {
        "config": asdict(cfg),
        "annotator": annotator.to_dict(),
        "stage_raw": str(stage_raw),
        "stage_out": str(stage_out),
    }
    jobs = _case_jobs(s, counts, site_of, shared)
    t0 = time.perf_counter()
    try:
        records = _run_jobs(
            jobs,
            s.num_processes,
            tqdm(total=len(jobs), desc="nnts synth", unit="case", disable=not s.progress),
        )
        _write_dataset_json(stage_raw, s.dataset_name, s.n_strong, s.seed, s.preset, cfg)
        _write_weak_metadata(stage_out, records)
        # commit: replace old outputs, move staged folders in place, manifest last
        for p in existing:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        os.replace(stage_raw, target)
        for name in ("weak", "test", "lungs"):
            os.replace(stage_out / name, out / name)
        _write_synth_settings(s, target, shared, counts)
        _write_manifest(out, records)
    finally:
        for stage in (stage_raw, stage_out):
            if stage.exists():
                shutil.rmtree(stage, ignore_errors=True)
    total = time.perf_counter() - t0
    gen = [r["_seconds_generate"] for r in records.values()]
    return {
        "dataset_dir": str(target),
        "weak_dir": str(out / "weak"),
        "test_dir": str(out / "test"),
        "lungs_dir": str(out / "lungs"),
        "manifest": str(out / "manifest.json"),
        "counts": counts,
        "n_cases": len(jobs),
        "n_tumours": int(sum(r["n_tumours"] for r in records.values())),
        "seconds_per_case_generate": float(np.mean(gen)),
        "seconds_per_case": total / len(jobs),
        "seconds_total": total,
        "config": asdict(cfg),
        "annotator": annotator.describe(),
    }


def _check_settings(s: PhantomSettings) -> None:
    """Refuse a bad dataset id or name, case counts, tumour-free share or process count."""
    if not (isinstance(s.dataset_id, int) and 1 <= s.dataset_id <= 999):
        raise InputError(f"dataset id must be an integer in 1..999, got {s.dataset_id!r}")
    if not s.dataset_name or not all(c.isalnum() or c in "_-" for c in s.dataset_name):
        raise InputError(f"dataset name {s.dataset_name!r}: use letters, digits, '_' or '-'")
    if s.n_strong < 1 or s.n_weak < 0 or s.n_test < 0:
        raise InputError(
            f"need >= 1 strong and >= 0 weak/test cases, got {s.n_strong}/{s.n_weak}/{s.n_test}"
        )
    if s.tumour_free is not None and not 0 <= s.tumour_free < 1:
        raise InputError(f"the tumour-free fraction must be in [0, 1), got {s.tumour_free}")
    if s.num_processes < 1:
        raise InputError(f"num_processes must be >= 1, got {s.num_processes}")


def _existing_outputs(s: PhantomSettings, raw: Path, out: Path, target: Path) -> list[Path]:
    """The outputs already there (refused unless ``overwrite``); refuses another dataset with the same id."""
    clash = (
        [p for p in raw.glob(f"Dataset{s.dataset_id:03d}_*") if p.is_dir() and p != target]
        if raw.is_dir()
        else []
    )
    if clash:
        raise InputError(
            f"{clash[0]}: another dataset already uses id {s.dataset_id}; remove it or choose another id"
        )
    existing = ([target] if target.exists() else []) + [
        out / n for n in OUT_ITEMS if (out / n).exists()
    ]
    if existing and not s.overwrite:
        raise InputError(
            f"{existing[0]}: already exists (pass overwrite=True / --overwrite to replace "
            f"{', '.join(str(p) for p in existing)})"
        )
    return existing


def _case_jobs(
    s: PhantomSettings,
    counts: dict[str, int],
    site_of: dict[str, list[str]],
    shared: dict,
) -> list[dict]:
    """One job per case, numbered across the splits (strong, weak, test), each with its own seed."""
    jobs, index = [], 0
    for split, n in counts.items():
        free = tumour_free_indices(n, s.tumour_free) if s.tumour_free is not None else set()
        for k in range(n):
            index += 1
            count = (
                {"min_tumours": 0, "n_tumours": 0}
                if k in free
                else {"min_tumours": 0 if split == "test" and s.tumour_free is None else 1}
            )
            jobs.append(
                {
                    "case": f"phantom_{index:04d}",
                    "patient": f"patient_{index:04d}",
                    "split": split,
                    "site": site_of[split][k],
                    "seed": _case_seed(s.seed, index),
                    **count,
                    **shared,
                }
            )
    return jobs


def _write_weak_metadata(stage_out: Path, records: dict[str, dict]) -> None:
    """Create every output folder (present even when a split is empty) and the weak set's metadata."""
    from ..formats.weak_set import WeakSet

    weak = WeakSet(stage_out / "weak")
    for folder in (
        weak.images,
        weak.boxes,
        weak.boxmasks,
        weak.labels,
        stage_out / "test" / "images",
        stage_out / "test" / "labels",
    ):
        folder.mkdir(parents=True, exist_ok=True)
    weak.write_metadata(
        {
            r["case"]: {"site": r["site"], "patient": r["patient"], "n_tumours": r["n_tumours"]}
            for r in records.values()
            if r["split"] == "weak"
        }
    )


def _write_synth_settings(
    s: PhantomSettings, target: Path, shared: dict, counts: dict[str, int]
) -> None:
    settings = {
        "dataset_id": s.dataset_id,
        "dataset_name": s.dataset_name,
        "dataset_dir": str(target.resolve()),
        "seed": s.seed,
        "preset": s.preset,
        "config": shared["config"],
        "annotator": shared["annotator"],
        "sites": s.sites if isinstance(s.sites, str) else list(s.sites),
        "counts": counts,
        "tumour_free": s.tumour_free,
    }
    write_text_atomic(json.dumps(settings, indent=1), Path(s.out_dir) / "synth_settings.json")


def _write_manifest(out: Path, records: dict[str, dict]) -> None:
    manifest = {
        cid: {k: v for k, v in r.items() if k != "case" and not k.startswith("_")}
        for cid, r in sorted(records.items())
    }
    write_text_atomic(json.dumps(manifest, indent=1), out / "manifest.json")


def _run_jobs(jobs: list[dict], num_processes: int, bar) -> dict[str, dict]:
    records: dict[str, dict] = {}
    with bar:
        if num_processes == 1:
            for job in jobs:
                records[job["case"]] = _build_case(job)
                bar.update()
        else:  # spawn: safe with SimpleITK/torch threads in the parent
            with ProcessPoolExecutor(
                num_processes, mp_context=multiprocessing.get_context("spawn")
            ) as pool:
                for fut in as_completed([pool.submit(_build_case, job) for job in jobs]):
                    r = fut.result()
                    records[r["case"]] = r
                    bar.update()
    return records


def _write_dataset_json(
    folder: Path, name: str, n_training: int, seed: int, preset: str, cfg: PhantomConfig
) -> None:
    ds = {
        "name": name,
        "description": f"Synthetic chest-CT phantoms with lung tumours (nnts synth, preset {preset}, seed {seed}, "
        f"anatomy scale {cfg.scale})",
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "tumor": 1},
        "numTraining": n_training,
        "file_ending": ".nii.gz",
        "licence": "generated data, no restrictions",
    }
    write_text_atomic(json.dumps(ds, indent=1), folder / "dataset.json")
