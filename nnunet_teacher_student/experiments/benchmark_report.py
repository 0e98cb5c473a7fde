"""Aggregation and report of ``nnts benchmark``: case-level statistics, the goal check, tables, a plot.

The unit is the case (``evaluation.statistics``): each model's per-case values (test cases for students and the
nnU-Net models, weak cases for the teachers) are averaged over the seeds (runs) that scored the case, then
summarised over the **tumour cases** with a bootstrap 95 % CI over cases; the tumour-free cases are counted apart
(false positives, mL). Paired comparisons are made on the seed-averaged cases (Wilcoxon signed-rank, bootstrap CI
of the mean difference), ``n`` = cases. The spread across seeds (sample std of the per-run means) is shown beside.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..evaluation.statistics import case_mean, is_tumour_case, paired_cases, seed_average
from .benchmark import MODELS, STUDENTS, TEACHERS
from .presets import MODEL_NAMES

METRICS = ("dsc", "dsc_tp", "f1", "recall", "precision")
LABELS = {
    "dsc": "DSC",
    "dsc_tp": "DSC-TP",
    "f1": "F1",
    "recall": "Recall",
    "precision": "Precision",
}
#: the goal: where the scenario asks a real question (upper bound >= baseline + GOAL_GAP_POINTS), the best student
#: is >= baseline + GOAL_BASELINE_POINTS on the tumour cases; the upper-bound ratio is reported beside
GOAL_UPPER_RATIO, GOAL_BASELINE_POINTS, GOAL_GAP_POINTS = 0.95, 5.0, 10.0
#: per run (scenario, seed, model): case -> its evaluation record (dsc, recall, ..., gt/pred volume)
CaseResults = Mapping[tuple[str, int, str], Mapping[str, Mapping]]


def seed_stats(values: Iterable[float | None]) -> dict:
    """Mean, sample std and 95 % CI half-width (t distribution) over the defined values."""
    from scipy import stats

    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = int(arr.size)
    if n == 0:
        return {
            "n": 0,
            "mean": math.nan,
            "std": math.nan,
            "ci95": math.nan,
            "low": math.nan,
            "high": math.nan,
        }
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "ci95": half, "low": mean - half, "high": mean + half}


def _metric(cases: CaseResults, key: tuple[str, int, str], metric: str) -> dict[str, float]:
    """Case -> ``metric`` of the tumour cases of one run (undefined values left out)."""
    return {
        c: float(r[metric])
        for c, r in cases[key].items()
        if is_tumour_case(r) and r.get(metric) is not None and not math.isnan(float(r[metric]))
    }


def case_values(
    cases: CaseResults, scenario: str, model: str, metric: str = "dsc"
) -> dict[str, float]:
    """Tumour case -> ``metric`` of ``model`` in ``scenario``, averaged over the seeds that scored the case."""
    return seed_average(
        _metric(cases, key, metric)
        for key in sorted(cases)
        if key[0] == scenario and key[2] == model
    )


def tumour_free_counts(cases: CaseResults, scenario: str, model: str) -> dict:
    """The tumour-free cases over the runs of ``scenario``: (case, seed) pairs, those with any false positive,
    and the mean false-positive volume (mL)."""
    vols = [
        float(r.get("pred_volume_ml") or 0.0)
        for key in sorted(cases)
        if key[0] == scenario and key[2] == model
        for r in cases[key].values()
        if not is_tumour_case(r)
    ]
    return {
        "n": len(vols),
        "with_fp": int(sum(v > 0 for v in vols)),
        "fp_ml_mean": float(np.mean(vols)) if vols else math.nan,
    }


def aggregate(records: Sequence[Mapping], cases: CaseResults) -> list[dict]:
    """One row per (scenario, model): the case-level mean of every metric over the tumour cases (seeds
    averaged per case first) with its bootstrap CI and ``n`` cases, the spread of the per-run means across
    seeds (``seed_dsc``), and the tumour-free counts; in strong-count, scenario, model order."""
    rows: dict[tuple[str, str], dict] = {}
    for r in records:
        key = (r["scenario"], r["model"])
        row = rows.setdefault(
            key,
            {
                "scenario": r["scenario"],
                "n_strong": r["n_strong"],
                "n_weak": r["n_weak"],
                "model": r["model"],
                "name": r["name"],
                "evaluated_on": r["evaluated_on"],
                "seeds": [],
                "_dsc": [],
            },
        )
        row["seeds"].append(r["seed"])
        row["_dsc"].append(r.get("dsc"))
    out = []
    order = list(MODELS)
    for key in sorted(rows, key=lambda k: (rows[k]["n_strong"], k[0], order.index(k[1]))):
        row = rows[key]
        row["seed_dsc"] = seed_stats(row.pop("_dsc"))
        for m in METRICS:
            row[m] = case_mean(case_values(cases, *key, m))
        row["n_cases"] = row["dsc"]["n"]
        row["tumour_free"] = tumour_free_counts(cases, *key)
        out.append(row)
    return out


def _pct(stats: Mapping, ci: bool = False) -> str:
    """``MEAN``, with ``ci`` ``MEAN [LOW, HIGH]`` (case-level mean and bootstrap CI, %); "n/a" without cases."""
    if not stats.get("n"):
        return "n/a"
    cell = f"{100 * stats['mean']:.1f}"
    if ci and not math.isnan(stats.get("low", math.nan)):
        cell += f" [{100 * stats['low']:.1f}, {100 * stats['high']:.1f}]"
    return cell


def _free_cell(free: Mapping) -> str:
    if not free.get("n"):
        return "–"
    return f"{free['with_fp']} / {free['n']}" + (
        f" ({free['fp_ml_mean']:.3g} mL)" if free["with_fp"] else ""
    )


def markdown_table(rows: Sequence[Mapping], models: Sequence[str]) -> str:
    """Rows: scenario then model; metrics are case-level means over the tumour cases (seeds averaged per case),
    DSC with its bootstrap 95 % CI over cases; the std of the per-run DSC across seeds; the tumour-free cases
    (case x seed pairs) with any false positive, and their mean false-positive volume."""
    lines = [
        "| Scenario (strong / weak) | Model | seeds | tumour cases | "
        + " | ".join(LABELS[m] + (" [95 % CI]" if m == "dsc" else "") for m in METRICS)
        + " | DSC std over seeds | tumour-free with FP (mean mL) |",
        "|---|---|---|---|" + "---|" * len(METRICS) + "---|---|",
    ]
    for r in rows:
        if r["model"] not in models:
            continue
        cells = [_pct(r[m], ci=(m == "dsc")) for m in METRICS]
        sd = r["seed_dsc"]
        spread = f"{100 * sd['std']:.1f}" if sd.get("n", 0) > 1 else "–"
        lines.append(
            f"| {r['scenario']} ({r['n_strong']} / {r['n_weak']}) | {r['name']} | {len(r['seeds'])} | "
            f"{r['n_cases']} | "
            + " | ".join(cells)
            + f" | {spread} | {_free_cell(r['tumour_free'])} |"
        )
    return "\n".join(lines)


def goal_check(rows: Sequence[Mapping], scenario: str, cases: CaseResults | None = None) -> dict:
    """The goal in ``scenario``, on tumour-case means: the question is real when the upper bound is >= 10 DSC
    points above the baseline; then the best student must be >= 5 points above the baseline (and above the
    ignore-label answer). The ratio to the upper bound is reported, not required. With ``cases`` the best
    student's paired comparison with the baseline (case level) is attached. Missing models: undecided."""
    by = {
        r["model"]: r["dsc"]["mean"]
        for r in rows
        if r["scenario"] == scenario and r["dsc"].get("n")
    }
    students = {m: by[m] for m in STUDENTS if m in by}
    result: dict = {
        "scenario": scenario,
        "best_student": None,
        "checks": {},
        "met": None,
        "question_real": None,
    }
    if not students:
        return result
    best = max(students, key=students.get)
    d = students[best]
    result["best_student"] = {"model": best, "name": MODEL_NAMES[best], "dsc": d}
    checks = {}
    if "upper" in by and "baseline" in by:
        gap = 100 * (by["upper"] - by["baseline"])
        result["question_real"] = gap >= GOAL_GAP_POINTS
        result["gap"] = gap
    if "upper" in by:
        result["upper_ratio"] = d / by["upper"] if by["upper"] > 0 else math.nan
    if "baseline" in by:
        checks[f"{GOAL_BASELINE_POINTS:g} DSC points above the baseline"] = {
            "value": 100 * (d - by["baseline"]),
            "ok": 100 * (d - by["baseline"]) >= GOAL_BASELINE_POINTS,
        }
        if cases is not None:
            result["paired"] = paired_cases(
                case_values(cases, scenario, best), case_values(cases, scenario, "baseline")
            )
    if "ignore" in by:
        checks["above the ignore-label answer"] = {
            "value": 100 * (d - by["ignore"]),
            "ok": d > by["ignore"],
        }
    result["checks"] = checks
    baseline_check = f"{GOAL_BASELINE_POINTS:g} DSC points above the baseline"
    result["met"] = baseline_check in checks and all(c["ok"] for c in checks.values())
    # an upper bound below the baseline did not train within the budget: comparing with it says nothing
    result["warnings"] = [
        f"the upper bound ({100 * by['upper']:.1f} %) scored below the {MODEL_NAMES[m]} ({100 * by[m]:.1f} %): "
        "with true masks for every case it should be the best model, so it did not converge within this "
        "budget and the comparisons with it are not meaningful"
        for m in ("baseline",)
        if "upper" in by and m in by and by["upper"] < by[m]
    ]
    return result


def failed_teachers(records: Sequence[Mapping], model: str = "teacher") -> list[str]:
    """Runs (``scenario:seed``) whose teacher found no lesion at all on the weak set (recall 0): its
    pseudo-labels are empty, so that run's students learned "no tumour" from the weak cases."""
    return [
        f"{r['scenario']}:{r['seed']}"
        for r in records
        if r["model"] == model and r.get("recall") is not None and r["recall"] == 0
    ]


def goal_text(goal: Mapping) -> str:
    if not goal.get("best_student"):
        return (
            f"Goal ({goal['scenario']} scenario): no student was evaluated, so it cannot be judged."
        )
    b = goal["best_student"]
    lines = [
        f"Goal ({goal['scenario']} scenario, means over tumour cases), best student = {b['name']} at DSC "
        f"{100 * b['dsc']:.1f} %:"
    ]
    if goal.get("question_real") is not None:
        lines.append(
            f"- the scenario's question (upper bound − baseline >= {GOAL_GAP_POINTS:g} points): "
            f"{'real' if goal['question_real'] else '**not real here**'} ({goal['gap']:+.1f} points)"
        )
    for name, c in goal["checks"].items():
        lines.append(f"- {name}: {'met' if c['ok'] else '**not met**'} ({c['value']:+.1f} points)")
    paired = goal.get("paired")
    if paired:
        p = "–" if paired["p"] is None else f"{paired['p']:.2g}"
        ci = (
            ""
            if math.isnan(paired["low"])
            else f" [{100 * paired['low']:+.1f}, {100 * paired['high']:+.1f}]"
        )
        lines.append(
            f"- paired over {paired['n']} tumour case(s) (seeds averaged per case): "
            f"{100 * paired['mean']:+.1f}{ci}, Wilcoxon p = {p}"
        )
    if "upper_ratio" in goal:
        lines.append(
            f"- ratio to the upper bound: {goal['upper_ratio']:.2f}x (reported, not required)"
        )
    if not any("baseline" in name for name in goal["checks"]):
        lines.append("- no baseline in this benchmark: the goal cannot be judged")
    verdict = "**met**" if goal["met"] else "**not met**"
    if goal.get("question_real") is False:
        verdict += (
            " (the baseline is already near the upper bound: the scenario asks no question here)"
        )
    lines.append(f"Overall: {verdict}.")
    lines += [f"**Caution**: {w}." for w in goal.get("warnings", [])]
    return "\n".join(lines)


def csv_text(records: Sequence[Mapping]) -> str:
    cols = [
        "scenario",
        "n_strong",
        "n_weak",
        "seed",
        "model",
        "name",
        "evaluated_on",
        "n_cases",
        *METRICS,
        "hd95_mm",
        "nsd",
        "train_seconds",
    ]
    buf = io.StringIO()
    w = csv.DictWriter(buf, cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(records)
    return buf.getvalue()


def figure_dsc_vs_strong(rows: Sequence[Mapping], out, title: str = "") -> object | None:
    """Case-level mean DSC over tumour cases (± its bootstrap 95 % CI over cases) against the number of strong
    cases, one line per model; teachers (scored on the weak cases) dashed."""
    from ..reporting.figures import pyplot, save_figure

    plt = pyplot()
    models = [m for m in MODELS if any(r["model"] == m and r["dsc"].get("n") for r in rows)]
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, m in enumerate(models):
        pts = sorted(
            (r["n_strong"], r["dsc"]) for r in rows if r["model"] == m and r["dsc"].get("n")
        )
        x = np.array([p[0] for p in pts], float) + (i - len(models) / 2) * 0.04 * max(1, pts[-1][0])
        y = np.array([100 * p[1]["mean"] for p in pts])
        err = np.array(
            [
                [
                    100 * (p[1]["mean"] - p[1]["low"]) if not math.isnan(p[1]["low"]) else 0.0
                    for p in pts
                ],
                [
                    100 * (p[1]["high"] - p[1]["mean"]) if not math.isnan(p[1]["high"]) else 0.0
                    for p in pts
                ],
            ]
        )
        ax.errorbar(
            x,
            y,
            yerr=err,
            marker="o",
            capsize=3,
            linestyle="--" if m in TEACHERS else "-",
            label=MODEL_NAMES[m] + (" [weak set]" if m in TEACHERS else ""),
        )
    ax.set_xticks(
        sorted({r["n_strong"] for r in rows if r["model"] in models})
    )  # the scenarios, not the offsets
    ax.set_xlabel("strong cases (the rest of the pool is weak); models side by side")
    ax.set_ylabel("DSC (%) over tumour cases, 95 % CI over cases")
    ax.set_ylim(0, 100)
    ax.set_title(title or "Test DSC against the number of strong cases", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return save_figure(plt, fig, out)


def per_run_teacher_table(records: Sequence[Mapping], guards: Mapping[str, Mapping]) -> str:
    """One row per run (``scenario:seed``): each teacher's weak-set DSC / lesion recall, and the box
    teacher's guard (attempts, kept seed, passed)."""
    teachers = [m for m in TEACHERS if any(r["model"] == m for r in records)]
    runs = sorted(
        {(r["n_strong"], r["scenario"], r["seed"]) for r in records if r["model"] in teachers}
    )
    head = ["Run"] + [f"{MODEL_NAMES[m]}: DSC / recall" for m in teachers] + ["Box teacher guard"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, scenario, seed in runs:
        cells = [f"{scenario}:{seed}"]
        for m in teachers:
            r = next(
                (
                    x
                    for x in records
                    if x["model"] == m and x["scenario"] == scenario and x["seed"] == seed
                ),
                None,
            )
            cells.append(
                "–"
                if r is None or r.get("dsc") is None
                else f"{100 * r['dsc']:.1f} / {100 * (r.get('recall') or 0):.0f} %"
            )
        g = guards.get(f"{scenario}:{seed}") or {}
        attempts = g.get("attempts", [])
        cells.append(
            "–"
            if not attempts
            else ", ".join(f"seed {a['seed']} {100 * (a['dsc_mean'] or 0):.1f}" for a in attempts)
            + f"; kept seed {g.get('chosen_seed')}"
            + ("" if g.get("passed") else " (**none passed**)")
        )
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
            got = {
                r["seed"]: r.get("dsc")
                for r in records
                if r["scenario"] == scenario and r["model"] == m
            }
            if not got:
                continue
            cells = ["–" if got.get(s) is None else f"{100 * got[s]:.1f}" for s in seeds]
            lines.append(f"| {scenario} | {MODEL_NAMES[m]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: the comparisons of the paired table: (model, against)
PAIRS = (
    ("so", "baseline"),
    ("do", "baseline"),
    ("so_nnunet", "baseline"),
    ("so", "so_nnunet"),
    ("do", "so_nnunet"),
    ("do", "so"),
    ("so_paper", "baseline"),
    ("do_paper", "baseline"),
    ("so_paper", "so"),
    ("do_paper", "do"),
    ("upper", "baseline"),
    ("do", "upper"),
    ("upper_do", "upper"),
    ("do", "upper_do"),
    ("so", "ignore"),
    ("do", "ignore"),
    ("so_unc", "so"),
    ("do_unc", "do"),
    ("so_unc", "baseline"),
    ("do_unc", "baseline"),
    ("do_ens", "do"),
    ("do_ens", "baseline"),
    ("do_r2", "do"),
    ("do_r2", "baseline"),
)


def paired_stats(cases: CaseResults, scenario: str, model: str, against: str) -> dict | None:
    """``model - against`` on the tumour cases of ``scenario`` at the case level: each case's DSC averaged over
    the seeds in which both models scored it, then :func:`~..evaluation.statistics.paired_cases` over the cases
    (n = cases); ``per_seed`` keeps each run's mean difference, to show the spread."""
    seeds = sorted(
        {sd for sc, sd, m in cases if sc == scenario and m == model and (sc, sd, against) in cases}
    )
    if not seeds:
        return None
    a = seed_average(_metric(cases, (scenario, sd, model), "dsc") for sd in seeds)
    b = seed_average(_metric(cases, (scenario, sd, against), "dsc") for sd in seeds)
    result = paired_cases(a, b)
    if result is None:
        return None
    per_seed = {}
    for sd in seeds:
        x, y = (
            _metric(cases, (scenario, sd, model), "dsc"),
            _metric(cases, (scenario, sd, against), "dsc"),
        )
        common = sorted(set(x) & set(y))
        if common:
            per_seed[sd] = float(np.mean([x[c] - y[c] for c in common]))
    result["per_seed"] = per_seed
    return result


def paired_table(cases: CaseResults, scenarios: Sequence[str]) -> str:
    """Markdown: :data:`PAIRS` per scenario, at the case level (tumour cases, seeds averaged per case)."""
    lines = [
        "| Scenario | Comparison | tumour cases | mean ΔDSC [95 % bootstrap CI] | better / worse | Wilcoxon p | "
        "ΔDSC per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario in scenarios:
        for model, against in PAIRS:
            r = paired_stats(cases, scenario, model, against)
            if r is None:
                continue
            p = "–" if r["p"] is None else f"{r['p']:.2g}"
            seeds = ", ".join(f"{100 * v:+.1f}" for _, v in sorted(r["per_seed"].items()))
            ci = "" if math.isnan(r["low"]) else f" [{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]"
            lines.append(
                f"| {scenario} | {MODEL_NAMES[model]} − {MODEL_NAMES[against]} | {r['n']} | "
                f"{100 * r['mean']:+.1f}{ci} | {r['better']} / {r['worse']} | {p} | {seeds} |"
            )
    return "\n".join(lines) + "\n"


def per_case_csv(cases: CaseResults) -> str:
    """Every (scenario, seed, model, case) with its metrics and volumes: the file every table is rebuilt from."""
    cols = [
        "scenario",
        "seed",
        "model",
        "case",
        "tumour_case",
        *METRICS,
        "gt_volume_ml",
        "pred_volume_ml",
    ]
    buf = io.StringIO()
    w = csv.DictWriter(buf, cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for scenario, seed, model in sorted(cases):
        for case, r in sorted(cases[(scenario, seed, model)].items()):
            w.writerow(
                {
                    "scenario": scenario,
                    "seed": seed,
                    "model": model,
                    "case": case,
                    "tumour_case": int(is_tumour_case(r)),
                    **{k: r.get(k) for k in cols[5:]},
                }
            )
    return buf.getvalue()


def read_per_case_csv(text: str) -> dict[tuple[str, int, str], dict[str, dict]]:
    """The inverse of :func:`per_case_csv` (empty cells: undefined)."""
    out: dict[tuple[str, int, str], dict[str, dict]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        rec = {
            k: (float(v) if v not in ("", "nan", "None") else None)
            for k, v in row.items()
            if k not in ("scenario", "seed", "model", "case", "tumour_case")
        }
        out.setdefault((row["scenario"], int(row["seed"]), row["model"]), {})[row["case"]] = rec
    return out
