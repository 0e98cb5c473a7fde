"""Merge the real-CT teacher study's two sessions into one table (issue 31).

Box folds 0-1 ran in the session before (from a0ec74b; rows in teacher_partial.json); box folds 2-3, the point
teacher's four folds and the classical rule ran in this one (from 7da71e9, result_box_point.json). Same plan, folds,
boxes (seed 0), budget and seeds in both.

    python benchmarks/results/2026-12-07_real_ct/teacher/merge.py RESULT_BOX_POINT.json
"""

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
now = json.loads(Path(sys.argv[1]).read_text())
before = json.loads((HERE / "teacher_partial.json").read_text())
rows = [r for r in now["rows"]]
have = {(r["method"], r["case"]) for r in rows}
rows += [r for r in before["rows"] if (r["method"], r["case"]) not in have]
rows.sort(key=lambda r: (r["method"], r["case"]))
summary = {}
for method in ("box", "point", "classical"):
    r = [x for x in rows if x["method"] == method]
    summary[method] = {
        "tumours": len(r),
        "tumour_dsc_mean": round(100 * float(np.mean([x["dsc"] for x in r])), 1),
        "recall": round(100 * float(np.mean([x["detected"] for x in r])), 1),
    }
box = {x["case"]: x["dsc"] for x in rows if x["method"] == "box"}
rule = {x["case"]: x["dsc"] for x in rows if x["method"] == "classical"}
diff = [100 * (box[c] - rule[c]) for c in sorted(box)]
summary["box_minus_rule"] = {
    "mean": round(float(np.mean(diff)), 1),
    "per_case": dict(zip(sorted(box), [round(d, 1) for d in diff])),
}
out = {
    "sources": {"box folds 0-1": "teacher_partial.json", "the rest": sys.argv[1]},
    "meta": now.get("meta"),
    "rows": rows,
    "summary": summary,
}
(HERE / "teacher_result.json").write_text(json.dumps(out, indent=1) + "\n")
print(json.dumps(summary, indent=1))
