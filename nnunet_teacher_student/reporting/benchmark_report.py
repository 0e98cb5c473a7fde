"""Aggregation and report of ``nnts benchmark``: statistics across seeds, the goal check, tables, a plot.

Per run (scenario, seed) each model has one number per metric: its mean over the cases (test cases
for students and the nnU-Net models, weak cases for the teachers). Across seeds we report the mean,
the sample standard deviation (ddof=1) and a 95 % confidence interval of the mean from Student's t
distribution (scipy), which is wide with three seeds and undefined with one.
"""
from __future__ import annotations

import csv
import io
import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..experiments.benchmark import MODELS, STUDENTS, TEACHERS
from ..experiments.presets import MODEL_NAMES

METRICS = ("dsc", "dsc_tp", "f1", "recall", "precision")
LABELS = {"dsc": "DSC", "dsc_tp": "DSC-TP", "f1": "F1", "recall": "Recall", "precision": "Precision"}
#: the issue's goal in the scarce scenario: best student vs upper bound, baseline and ignore label
GOAL_UPPER_RATIO, GOAL_BASELINE_POINTS = 0.95, 10.0


def seed_stats(values: Iterable[float | None]) -> dict:
    """Mean, sample std and 95 % CI half-width (t distribution) over the defined values."""
    from scipy import stats

    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = int(arr.size)
    if n == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "ci95": math.nan, "low": math.nan, "high": math.nan}
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "ci95": half, "low": mean - half, "high": mean + half}


def aggregate(records: Sequence[Mapping]) -> list[dict]:
    """One row per (scenario, model): seed statistics of every metric, in scenario then model order."""
    rows: dict[tuple[str, str], dict] = {}
    for r in records:
        key = (r["scenario"], r["model"])
        row = rows.setdefault(key, {"scenario": r["scenario"], "n_strong": r["n_strong"], "n_weak": r["n_weak"],
                                    "model": r["model"], "name": r["name"], "evaluated_on": r["evaluated_on"],
                                    "seeds": [], "_values": {m: [] for m in METRICS}})
        row["seeds"].append(r["seed"])
        for m in METRICS:
            row["_values"][m].append(r.get(m))
    out = []
    order = list(MODELS)
    for key in sorted(rows, key=lambda k: (rows[k]["n_strong"], k[0], order.index(k[1]))):
        row = rows[key]
        values = row.pop("_values")
        row.update({m: seed_stats(values[m]) for m in METRICS})
        out.append(row)
    return out


def _pct(stats: Mapping, ci: bool = False) -> str:
    if not stats.get("n"):
        return "n/a"
    cell = f"{100 * stats['mean']:.1f}"
    if stats["n"] > 1:
        cell += f" ± {100 * stats['std']:.1f}"
        if ci:  # a DSC lies in [0, 100]: the t interval is clipped to it
            cell += f" [{100 * max(stats['low'], 0.0):.1f}, {100 * min(stats['high'], 1.0):.1f}]"
    return cell


def markdown_table(rows: Sequence[Mapping], models: Sequence[str]) -> str:
    """Rows: scenario then model; DSC as mean ± std [95 % CI] across seeds, other metrics mean ± std."""
    lines = ["| Scenario (strong / weak) | Model | seeds | " + " | ".join(
        LABELS[m] + (" [95 % CI]" if m == "dsc" else "") for m in METRICS) + " |",
        "|---|---|---|" + "---|" * len(METRICS)]
    for r in rows:
        if r["model"] not in models:
            continue
        cells = [_pct(r[m], ci=(m == "dsc")) for m in METRICS]
        lines.append(f"| {r['scenario']} ({r['n_strong']} / {r['n_weak']}) | {r['name']} | {len(r['seeds'])} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def goal_check(rows: Sequence[Mapping], scenario: str) -> dict:
    """The issue's goal in ``scenario``: the best student's mean test DSC is >= 0.95 x the upper bound's,
    >= 10 DSC points above the baseline's, and above the ignore-label answer's. Missing models: undecided."""
    by = {r["model"]: r["dsc"]["mean"] for r in rows if r["scenario"] == scenario and r["dsc"].get("n")}
    students = {m: by[m] for m in STUDENTS if m in by}
    result: dict = {"scenario": scenario, "best_student": None, "checks": {}, "met": None}
    if not students:
        return result
    best = max(students, key=students.get)
    d = students[best]
    result["best_student"] = {"model": best, "name": MODEL_NAMES[best], "dsc": d}
    checks = {}
    if "upper" in by:
        checks["within 0.95x of the upper bound"] = {"value": d / by["upper"] if by["upper"] > 0 else math.nan,
                                                    "ok": d >= GOAL_UPPER_RATIO * by["upper"]}
    if "baseline" in by:
        checks["10 DSC points above the baseline"] = {"value": 100 * (d - by["baseline"]),
                                                      "ok": 100 * (d - by["baseline"]) >= GOAL_BASELINE_POINTS}
    if "ignore" in by:
        checks["above the ignore-label answer"] = {"value": 100 * (d - by["ignore"]), "ok": d > by["ignore"]}
    result["checks"] = checks
    result["met"] = bool(checks) and len(checks) == 3 and all(c["ok"] for c in checks.values())
    # an upper bound below the baseline did not train within the budget: comparing with it says nothing
    result["warnings"] = [
        f"the upper bound ({100 * by['upper']:.1f} %) scored below the {MODEL_NAMES[m]} ({100 * by[m]:.1f} %): "
        "with true masks for every case it should be the best model, so it did not converge within this "
        "budget and the comparisons with it are not meaningful"
        for m in ("baseline",) if "upper" in by and m in by and by["upper"] < by[m]]
    return result


def failed_teachers(records: Sequence[Mapping], model: str = "teacher") -> list[str]:
    """Runs (``scenario:seed``) whose teacher found no lesion at all on the weak set (recall 0): its
    pseudo-labels are empty, so that run's students learned "no tumour" from the weak cases."""
    return [f"{r['scenario']}:{r['seed']}" for r in records
            if r["model"] == model and r.get("recall") is not None and r["recall"] == 0]


def goal_text(goal: Mapping) -> str:
    if not goal.get("best_student"):
        return f"Goal ({goal['scenario']} scenario): no student was evaluated, so it cannot be judged."
    b = goal["best_student"]
    lines = [f"Goal ({goal['scenario']} scenario), best student = {b['name']} at DSC {100 * b['dsc']:.1f} %:"]
    units = {"within 0.95x of the upper bound": "x the upper bound"}
    for name, c in goal["checks"].items():
        value = f"{c['value']:.2f}{units[name]}" if name in units else f"{c['value']:+.1f} points"
        lines.append(f"- {name}: {'met' if c['ok'] else '**not met**'} ({value})")
    missing = 3 - len(goal["checks"])
    if missing:
        lines.append(f"- {missing} of the 3 comparisons could not be made (model not in this benchmark)")
    lines.append(f"Overall: {'**met**' if goal['met'] else '**not met**'}.")
    lines += [f"**Caution**: {w}." for w in goal.get("warnings", [])]
    return "\n".join(lines)


def csv_text(records: Sequence[Mapping]) -> str:
    cols = ["scenario", "n_strong", "n_weak", "seed", "model", "name", "evaluated_on", "n_cases", *METRICS,
            "hd95_mm", "nsd", "train_seconds"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(records)
    return buf.getvalue()


def figure_dsc_vs_strong(rows: Sequence[Mapping], out, title: str = "") -> object | None:
    """Mean DSC (± 95 % CI across seeds, ± std when the CI is undefined) against the number of strong
    cases, one line per model; teachers (scored on the weak cases) dashed."""
    from .figures import pyplot, save_figure

    plt = pyplot()
    models = [m for m in MODELS if any(r["model"] == m and r["dsc"].get("n") for r in rows)]
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, m in enumerate(models):
        pts = sorted((r["n_strong"], r["dsc"]) for r in rows if r["model"] == m and r["dsc"].get("n"))
        x = np.array([p[0] for p in pts], float) + (i - len(models) / 2) * 0.04 * max(1, pts[-1][0])
        y = np.array([100 * p[1]["mean"] for p in pts])
        err = np.array([100 * (p[1]["ci95"] if not math.isnan(p[1]["ci95"]) else 0.0) for p in pts])
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, linestyle="--" if m in TEACHERS else "-",
                    label=MODEL_NAMES[m] + (" [weak set]" if m in TEACHERS else ""))
    ax.set_xticks(sorted({r["n_strong"] for r in rows if r["model"] in models}))  # the scenarios, not the offsets
    ax.set_xlabel("strong cases (the rest of the pool is weak); models side by side")
    ax.set_ylabel("DSC (%), mean ± 95 % CI over seeds")
    ax.set_ylim(0, 100)
    ax.set_title(title or "Test DSC against the number of strong cases", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return save_figure(plt, fig, out)


def per_run_teacher_table(records: Sequence[Mapping], guards: Mapping[str, Mapping]) -> str:
    """One row per run (``scenario:seed``): each teacher's weak-set DSC / lesion recall, and the box
    teacher's guard (attempts, kept seed, passed)."""
    teachers = [m for m in TEACHERS if any(r["model"] == m for r in records)]
    runs = sorted({(r["n_strong"], r["scenario"], r["seed"]) for r in records if r["model"] in teachers})
    head = ["Run"] + [f"{MODEL_NAMES[m]}: DSC / recall" for m in teachers] + ["Box teacher guard"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, scenario, seed in runs:
        cells = [f"{scenario}:{seed}"]
        for m in teachers:
            r = next((x for x in records if x["model"] == m and x["scenario"] == scenario and x["seed"] == seed), None)
            cells.append("–" if r is None or r.get("dsc") is None else
                         f"{100 * r['dsc']:.1f} / {100 * (r.get('recall') or 0):.0f} %")
        g = guards.get(f"{scenario}:{seed}") or {}
        attempts = g.get("attempts", [])
        cells.append("–" if not attempts else
                     ", ".join(f"seed {a['seed']} {100 * (a['dsc_mean'] or 0):.1f}" for a in attempts)
                     + f"; kept seed {g.get('chosen_seed')}" + ("" if g.get("passed") else " (**none passed**)"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def per_seed_table(records: Sequence[Mapping], models: Sequence[str]) -> str:
    """One row per (scenario, model) of the test-set models: the mean DSC of each seed's run."""
    runs = sorted({(r["n_strong"], r["scenario"], r["seed"]) for r in records})
    seeds = sorted({s for _, _, s in runs})
    head = ["Scenario", "Model"] + [f"seed {s}" for s in seeds]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n_strong, scenario in sorted({(n, sc) for n, sc, _ in runs}):
        for m in models:
            got = {r["seed"]: r.get("dsc") for r in records if r["scenario"] == scenario and r["model"] == m}
            if not got:
                continue
            cells = ["–" if got.get(s) is None else f"{100 * got[s]:.1f}" for s in seeds]
            lines.append(f"| {scenario} | {MODEL_NAMES[m]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: the comparisons of the paired table: (model, against)
PAIRS = (("so", "baseline"), ("do", "baseline"), ("so_nnunet", "baseline"), ("so", "so_nnunet"),
         ("do", "so_nnunet"), ("do", "so"), ("so_paper", "baseline"), ("do_paper", "baseline"),
         ("so_paper", "so"), ("do_paper", "do"), ("upper", "baseline"), ("do", "upper"), ("upper_do", "upper"),
         ("do", "upper_do"), ("so", "ignore"), ("do", "ignore"), ("so_unc", "so"), ("do_unc", "do"),
         ("so_unc", "baseline"), ("do_unc", "baseline"), ("do_ens", "do"), ("do_ens", "baseline"), ("do_r2", "do"),
         ("do_r2", "baseline"))


def paired_stats(cases: Mapping[tuple[str, int, str], Mapping[str, float]], scenario: str, model: str,
                 against: str) -> dict | None:
    """Per-case DSC differences ``model - against`` pooled over the seeds of ``scenario`` (pairs: the same
    test case in the same run): mean, 95 % CI (t), cases better/worse, Wilcoxon signed-rank p."""
    from scipy import stats

    diffs, per_seed = [], {}
    for (sc, seed, m), dsc in cases.items():
        if sc != scenario or m != model or (sc, seed, against) not in cases:
            continue
        other = cases[(sc, seed, against)]
        d = [dsc[c] - other[c] for c in sorted(set(dsc) & set(other))]
        if d:
            per_seed[seed] = float(np.mean(d))
            diffs += d
    if not diffs:
        return None
    arr = np.asarray(diffs)
    s = seed_stats(arr)
    p = float(stats.wilcoxon(arr).pvalue) if arr.size >= 6 and np.any(np.abs(arr) > 1e-9) else None
    return {"n": int(arr.size), "mean": float(arr.mean()), "low": s["low"], "high": s["high"], "p": p,
            "better": int((arr > 1e-9).sum()), "worse": int((arr < -1e-9).sum()), "per_seed": per_seed}


def paired_table(cases: Mapping[tuple[str, int, str], Mapping[str, float]], scenarios: Sequence[str]) -> str:
    """Markdown: :data:`PAIRS` per scenario, from per-case DSC over seeds x cases."""
    lines = ["| Scenario | Comparison | pairs (seeds x cases) | mean ΔDSC [95 % CI] | better / worse | Wilcoxon p | "
             "ΔDSC per seed |", "|---|---|---|---|---|---|---|"]
    for scenario in scenarios:
        for model, against in PAIRS:
            r = paired_stats(cases, scenario, model, against)
            if r is None:
                continue
            p = "–" if r["p"] is None else f"{r['p']:.2g}"
            seeds = ", ".join(f"{100 * v:+.1f}" for _, v in sorted(r["per_seed"].items()))
            lines.append(f"| {scenario} | {MODEL_NAMES[model]} − {MODEL_NAMES[against]} | {r['n']} | "
                         f"{100 * r['mean']:+.1f} [{100 * r['low']:+.1f}, {100 * r['high']:+.1f}] | "
                         f"{r['better']} / {r['worse']} | {p} | {seeds} |")
    return "\n".join(lines) + "\n"
