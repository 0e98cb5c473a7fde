"""What every benchmark report carries (date, command, machine) and how it is written."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path


def run_meta(**extra) -> dict:
    """Date, the command line, the machine and torch's thread count, plus ``extra``."""
    import torch

    return {
        "date": datetime.date.today().isoformat(),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s)",
        "torch_threads": torch.get_num_threads(),
        **extra,
    }


def emit(report: dict, out: Path | None) -> None:
    """Print the report as JSON and write it to ``out`` when given."""
    text = json.dumps(report, indent=1)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
