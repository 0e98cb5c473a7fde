"""Are two ``nnts demo`` (or ``nnts pipeline``) output folders the same result? Compares every model's
per-case DSC (``evaluation/*/summary.json``) and every checkpoint's weights (``nnUNet_results``).

Usage: python benchmarks/compare_runs.py RUN_A RUN_B      (exit 0: identical)
e.g. nnts demo --quick -o a && nnts demo --quick -o b && python benchmarks/compare_runs.py a b
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def compare(a: Path, b: Path) -> bool:
    same = True
    for s in sorted((a / "evaluation").glob("*/summary.json")):
        da, db = (json.loads(p.read_text())["cases"] for p in (s, b / s.relative_to(a)))
        eq = [(x["case"], round(x["dsc"], 6)) for x in da] == [
            (x["case"], round(x["dsc"], 6)) for x in db
        ]
        same &= eq
        print(f"{s.parent.name:10s} {len(da):3d} cases  per-case DSC identical: {eq}")
    for c in sorted((a / "nnUNet_results").rglob("checkpoint_final.pth")):
        wa = torch.load(c, map_location="cpu", weights_only=False)["network_weights"]
        wb = torch.load(b / c.relative_to(a), map_location="cpu", weights_only=False)[
            "network_weights"
        ]
        eq = wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
        same &= eq
        print(f"{'/'.join(c.parts[-4:-1])}: weights identical: {eq}")
    print("IDENTICAL" if same else "DIFFERENT")
    return same


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(0 if compare(Path(sys.argv[1]), Path(sys.argv[2])) else 1)
