"""Self-contained run folders for ``nnts demo`` and ``nnts benchmark``: a settings marker that lets a
rerun resume (and refuses to mix runs or delete a foreign folder), and the run's own nnU-Net folders."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from pathlib import Path
from typing import Mapping

from ..core.errors import InputError
from ..core.files import write_text_atomic
from .plans import ensure_ext_trainer_path, ext_trainer_dir, with_ext_trainer

NNUNET_DIRS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def prepare_run_folder(
    out: Path,
    settings: Mapping,
    marker_name: str,
    tool: str,
    overwrite: bool,
    command: str | None = None,
    defaults: Mapping | None = None,
) -> None:
    """Create, resume or (``overwrite``) replace ``out``. A non-empty folder without ``marker_name`` is
    refused, and so is a folder whose marker holds other settings unless ``overwrite``. A setting the marker
    lacks (written before the setting existed) counts as its value in ``defaults``."""
    marker = out / marker_name
    wanted = json.loads(json.dumps(dict(settings)))
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not marker.is_file():
            raise InputError(
                f"{out}: exists and is not an {tool} folder (no {marker_name}); "
                f"choose another -o folder (--overwrite only replaces earlier {tool} folders)"
            )
        try:
            old = json.loads(marker.read_text()).get("settings")
        except json.JSONDecodeError:
            old = None
        if old is not None:
            old = {**json.loads(json.dumps(dict(defaults or {}))), **old}
        if overwrite:
            print(f"{tool}: --overwrite: removing the earlier run in {out}", flush=True)
            shutil.rmtree(out)
        elif any((old or {}).get(k) != v for k, v in wanted.items()):
            diff = sorted(k for k in wanted if (old or {}).get(k) != wanted[k])
            raise InputError(
                f"{out}: holds an {tool} run with other settings (differs in {', '.join(diff)}); "
                "pass --overwrite to replace it or choose another -o folder"
            )
        else:
            print(f"{tool}: resuming the run in {out} (finished steps are skipped)", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    if not marker.is_file():
        doc = {
            "settings": wanted,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": command,
        }
        write_text_atomic(json.dumps(doc, indent=1), marker)


def use_own_nnunet_folders(out: Path, tool: str) -> list[str]:
    """Point nnU-Net's folder variables (for this process and its children) at ``out/nnUNet_*``, make
    our trainers findable, and return the ``export`` lines a user needs to continue by hand."""
    for k in NNUNET_DIRS:
        if os.environ.get(k) and Path(os.environ[k]).resolve() != (out / k):
            print(
                f"{tool}: note: using {out / k} instead of your {k} (the run keeps to its folder)"
            )
        os.environ[k] = str(out / k)
        (out / k).mkdir(exist_ok=True)
    ensure_ext_trainer_path()
    os.environ.setdefault(
        "nnUNet_compile", "f"
    )  # compiling costs more than these short trainings gain
    return export_lines()


def export_lines() -> list[str]:
    """``export`` lines of nnU-Net's folder variables (as set now) and of our trainers' folder."""
    lines = [f"export {k}={shlex.quote(os.environ[k])}" for k in NNUNET_DIRS]
    return lines + [f"export nnUNet_extTrainer={shlex.quote(str(ext_trainer_dir()))}"]


def env_export_lines(base: Path | None = None) -> list[str]:
    """``nnts env``'s ``export`` lines: nnU-Net folders under ``base`` where unset, and nnUNet_extTrainer
    with our trainers' folder added."""
    base = Path(base or Path.cwd() / "nnUNet_data").resolve()
    lines = [
        f"export {name}={shlex.quote(str(base / name))}"
        for name in NNUNET_DIRS
        if not os.environ.get(name)
    ]
    value = with_ext_trainer({"nnUNet_extTrainer": os.environ.get("nnUNet_extTrainer", "")})
    return lines + [f"export nnUNet_extTrainer={shlex.quote(value)}"]
