"""Copy the small result files of an ``nnts benchmark`` folder (settings, per-run evaluations, timings, teacher
guards, the report) into another folder, keeping the layout, so that ``nnts benchmark --report-only`` can
aggregate runs made on different machines or sessions (the nnU-Net folders, gigabytes, stay behind).

Usage: python benchmarks/export_results.py BENCHMARK_DIR TARGET_DIR
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

PATTERNS = (
    "nnts_benchmark.json",
    "timings_pool.json",
    "pool/manifest.json",
    "report/*",
    "runs/*/timings.json",
    "runs/*/evaluation/*/summary.json",
    "runs/*/evaluation/*/*.csv",
    "nnUNet_results/*/*/nnts_guard.json",
    "runs/*/weak/scenario.json",
)


def export(src: Path, dst: Path) -> int:
    n = 0
    for pattern in PATTERNS:
        for path in sorted(src.glob(pattern)):
            if path.is_file():
                target = dst / path.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
                n += 1
    return n


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(f"{export(Path(sys.argv[1]), Path(sys.argv[2]))} file(s) copied")
