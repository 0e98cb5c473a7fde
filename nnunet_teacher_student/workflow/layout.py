"""Where each step's outputs are (nnU-Net's folders, the work folder's :class:`Layout`) and whether they are
current: the freshness rules of the steps' ``done()`` checks. Nothing here imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..core import dataset_keys as keys
from ..core.files import file_sha256, load_json
from ..formats.images import image_cases
from ..nnunet.plans import dataset_folder_name, nnunet_dir
from ..pseudo_labels.folder_format import PROVENANCE_FILE, QC_FILE
from .config import MODEL_NAMES, PLANS, PipelineConfig


def dataset_dir(kind: str, dataset_id: int) -> Path | None:
    """``$nnUNet_<kind>/DatasetXXX_Name`` of an id, or None."""
    root = nnunet_dir(f"nnUNet_{kind}")
    name = dataset_folder_name(dataset_id, root)
    return root / name if name else None


def raw_done(dataset_id: int) -> bool:
    folder = dataset_dir("raw", dataset_id)
    return folder is not None and (folder / "dataset.json").is_file()


def preprocessed_done(dataset_id: int, configuration: str) -> bool:
    """Plans hold ``configuration`` and its data folder (its own, or the base's it inherits) has every
    training case."""
    raw, pre = dataset_dir("raw", dataset_id), dataset_dir("preprocessed", dataset_id)
    if raw is None or pre is None:
        return False
    plans = load_json(pre / f"{PLANS}.json")
    if configuration not in plans.get("configurations", {}):
        return False
    n_train = load_json(raw / "dataset.json").get("numTraining")
    config = plans["configurations"][
        configuration
    ]  # its own data, else the data of the one it inherits
    data = pre / (
        config.get("data_identifier") or f"{PLANS}_{config.get('inherits_from', configuration)}"
    )
    return (
        bool(n_train)
        and data.is_dir()
        and len(list(data.glob("*.pkl"))) >= int(n_train)
        and newer(pre / "dataset.json", raw / "dataset.json")
    )  # planning copies dataset.json


def newer(path: Path, *than: Path) -> bool:
    """``path`` exists and is at least as recent as every existing file of ``than`` (as make does)."""
    if not path.is_file():
        return False
    t = path.stat().st_mtime
    return all(t >= p.stat().st_mtime for p in than if p.is_file())


def model_folder(cfg: PipelineConfig, role: str) -> Path:
    """``$nnUNet_results/DatasetXXX_Name/TRAINER__nnUNetPlans__CONFIG`` of a role's model."""
    ds = (
        dataset_folder_name(cfg.dataset_ids[role], nnunet_dir("nnUNet_raw"))
        or f"Dataset{cfg.dataset_ids[role]:03d}_{cfg.dataset_names[role]}"
    )
    return (
        nnunet_dir("nnUNet_results")
        / ds
        / f"{cfg.trainers[role]}__{PLANS}__{cfg.train_configuration}"
    )


def trained(cfg: PipelineConfig, role: str) -> bool:
    """Every fold has its final checkpoint, newer than the dataset's plans (else the model is stale)."""
    folder = model_folder(cfg, role)
    pre = dataset_dir("preprocessed", cfg.dataset_ids[role])
    plans = [pre / f"{PLANS}.json"] if pre else []
    return all(
        newer(folder / f"fold_{f}" / "checkpoint_final.pth", *plans) for f in cfg.folds_for(role)
    )


def guarded(cfg: PipelineConfig, role: str) -> bool:
    """A box teacher whose training the guard checks (see :mod:`..teacher.guard`)."""
    return cfg.guard and "BoxTeacher" in cfg.trainers.get(role, "")


def checkpoints(cfg: PipelineConfig, role: str) -> list[Path]:
    return [
        model_folder(cfg, role) / f"fold_{f}" / "checkpoint_final.pth" for f in cfg.folds_for(role)
    ]


def predictions_done(images: Path, out: Path, models: Sequence[Path] = ()) -> bool:
    """Every case has its mask and report, made after the model's checkpoints."""
    if not out.is_dir():
        return False
    return all(
        newer(out / f"{c}.json", *models) and (out / f"{c}.nii.gz").is_file()
        for c in image_cases(images)
    )


def stale_outputs(folder: Path, models: Sequence[Path]) -> bool:
    """Some output in ``folder`` is older than a model checkpoint (the model was retrained since)."""
    if not folder.is_dir():
        return False
    return any(not newer(p, *models) for p in folder.glob("*.json"))


def pseudo_done(out: Path, teacher: Sequence[Path] = ()) -> bool:
    """The QC table says every weak case is finished, and the pseudo-labels came from these checkpoints."""
    qc = load_json(out / QC_FILE)
    return bool(qc) and qc.get("complete") is True and not pseudo_stale(out, teacher)


def pseudo_stale(out: Path, teacher: Sequence[Path]) -> bool:
    """Pseudo-labels in ``out`` were made by other teacher checkpoints than ``teacher``."""
    prov = load_json(out / PROVENANCE_FILE)
    if not prov or not teacher:
        return False
    if not all(p.is_file() for p in teacher):
        return True
    per_fold = prov.get("checkpoint_sha256_per_fold", {})
    return sorted(per_fold.values()) != sorted(file_sha256(p) for p in teacher)


def student_dataset_current(cfg: PipelineConfig, role: str, pseudo_dir: Path) -> bool:
    """The student dataset exists and was built from the current pseudo-labels' teacher."""
    folder = dataset_dir("raw", cfg.dataset_ids[role])
    if folder is None or not (folder / "dataset.json").is_file():
        return False
    if role == "baseline":
        return True
    made_by = (load_json(folder / "dataset.json").get(keys.TEACHER) or {}).get("checkpoint_sha256")
    return made_by is not None and made_by == load_json(pseudo_dir / PROVENANCE_FILE).get(
        "checkpoint_sha256"
    )


@dataclass
class Layout:
    """Where the non-nnU-Net outputs go, under the work folder."""

    work: Path

    @property
    def pseudo(self) -> Path:
        return self.work / "pseudo_labels"

    @property
    def pseudo_probabilities(self) -> Path:
        """Pseudo-labels of the same teacher with its probabilities (the uncertainty-aware datasets' source)."""
        return self.work / "pseudo_labels_probabilities"

    def round_pseudo(self, k: int) -> Path:
        """The pseudo-labels of noisy-student round ``k`` (round 1: the teacher's)."""
        return self.pseudo if k == 1 else self.work / f"pseudo_labels_round{k}"

    @property
    def band(self) -> Path:
        """The teacher's unsure band (``nnts calibrate-band``)."""
        return self.work / "unsure_band.json"

    def predictions(self, role: str) -> Path:
        return self.work / "predictions" / role

    def evaluation(self, role: str) -> Path:
        return self.work / "evaluation" / role

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    @property
    def timings(self) -> Path:
        return self.work / "timings.json"


def load_results(
    layout: Layout, roles: Sequence[str], names: dict[str, str] | None = None
) -> dict[str, dict]:
    """``{model name: evaluation summary.json}`` of the roles that have one (``names``: role -> display name,
    default the method's)."""
    names = names or MODEL_NAMES
    out = {}
    for role in roles:
        doc = load_json(layout.evaluation(role) / "summary.json")
        if doc:
            out[names.get(role, role)] = doc
    return out
