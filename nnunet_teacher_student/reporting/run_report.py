"""The run report of ``nnts demo`` / ``nnts pipeline``: ``report.md`` with the paper-style tables, settings
and timings, the figures of :mod:`.figures`, and nnU-Net's own training curves (``training_<model>.png``,
copied from the model folders)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..core.files import load_json, write_text_atomic
from ..evaluation import markdown_table
from ..evaluation.statistics import (
    is_tumour_case,
    paired_cases,
    tumour_free_summary,
    tumour_free_text,
)
from ..pseudo_labels.folder_format import EXCLUDED_FILE, QC_FILE
from ..workflow.layout import load_results, model_folder
from .settings import PHANTOM_CAVEAT, ReportSettings
from .figures import (
    figure_box_consistency,
    figure_disagreement,
    figure_dsc_bars,
    figure_fill_vs_dsc,
    figure_test_cases,
    figure_weak_cases,
)


FILL_BINS = (0.0, 0.3, 0.5, 0.7, 1.0001)


def fill_table(qc: Sequence[Mapping]) -> str:
    """Pseudo-label DSC per box-fill bin (Markdown)."""
    rows = [
        (r["box_fill_mean"], r["dice_vs_truth"])
        for r in qc
        if r.get("box_fill_mean") is not None and r.get("dice_vs_truth") is not None
    ]
    if not rows:
        return "_No pseudo-label has both a box fill and a true mask._\n"
    lines = ["| Box fill | Cases | Pseudo-label DSC (%) |", "|---|---|---|"]
    for lo, hi in zip(FILL_BINS[:-1], FILL_BINS[1:]):
        vals = [d for f, d in rows if lo <= f < hi]
        label = f"{100 * lo:.0f}–{min(100, 100 * hi):.0f} %"
        cell = f"{100 * np.mean(vals):.2f} ± {100 * np.std(vals):.2f}" if vals else "–"
        lines.append(f"| {label} | {len(vals)} | {cell} |")
    return "\n".join(lines) + "\n"


def not_learnt(doc: Mapping) -> str | None:
    """Why a model's test-set evaluation shows it did not learn (None if it did): it predicts nothing on the
    cases with tumour, or (nearly) nothing it predicts is tumour, or it marks ten times the true volume."""
    cases = [c for c in doc.get("cases", []) if (c.get("gt_volume_ml") or 0) > 0]
    if not cases:
        return None
    pred = sum(c.get("pred_volume_ml") or 0 for c in cases)
    true = sum(c["gt_volume_ml"] for c in cases)
    precision = [c["precision"] for c in cases if c.get("precision") is not None]
    if pred == 0:
        return "it predicts nothing on the test cases that have a tumour"
    if precision and max(precision) < 0.05:
        return f"lesion precision below 5 % on every case (it marks {pred:.1f} mL against {true:.1f} mL of tumour)"
    if pred > 10 * true:
        return f"it marks {pred:.1f} mL against {true:.1f} mL of tumour (over ten times the truth)"
    return None


def paired_comparison(student: Mapping, baseline: Mapping) -> dict | None:
    """Per-case DSC differences student - baseline on the same tumour cases (``statistics.paired_cases``:
    bootstrap CI, Wilcoxon signed-rank when n >= 6)."""

    def dsc(doc: Mapping) -> dict[str, float]:
        return {
            c["case"]: c["dsc"]
            for c in doc.get("cases", [])
            if c.get("dsc") is not None and is_tumour_case(c)
        }

    return paired_cases(dsc(student), dsc(baseline))


def honest_summary(
    results: Mapping[str, Mapping],
    baseline: str,
    students: Sequence[str],
    quick: bool,
    teacher_doc: Mapping | None,
    caveat: str = PHANTOM_CAVEAT,
) -> str:
    """Plain sentences on what the numbers show and do not show; ``caveat`` ends them."""
    lines = []
    if quick:
        lines.append(
            "**This was a `--quick` smoke run** (tiny phantoms, one or two epochs of a few iterations): "
            "it checks that every step works end to end. Its numbers measure nothing about the method."
        )
    lines += teacher_sentences(teacher_doc)
    tumour_free = tumour_free_sentence(results, teacher_doc)
    if tumour_free:
        lines.append(tumour_free)
    failed = {
        name: why
        for name in [baseline, *students]
        if name in results
        for why in [not_learnt(results[name])]
        if why
    }
    for name, why in failed.items():
        lines.append(
            f"**{name} did not learn** at this budget: {why}. No comparison with it is drawn; train "
            "longer (`--epochs`) before reading its row."
        )
    if baseline in results and baseline not in failed:
        lines += comparison_sentences(results, baseline, [s for s in students if s not in failed])
    lines.append(
        caveat
        if not quick
        else "Run `nnts demo` without `--quick` for a run long enough to show an effect, if there is one."
    )
    return "\n\n".join(lines)


def teacher_sentences(teacher_doc: Mapping | None) -> list[str]:
    """The box teacher's pseudo-label DSC against the weak cases' true masks, and whether it failed."""
    if not teacher_doc:
        return []
    lines = []
    d = teacher_doc["summary"]["overall"]["dsc"]
    if d.get("n"):
        lines.append(
            f"The box teacher's pseudo-labels reach a mean DSC of {100 * d['mean']:.1f} % "
            f"(± {100 * d['std']:.1f}, {d['n']} weak cases) against the true masks of the weak cases "
            "(known for phantoms and scenarios only; on a real weak set, see the QC table)."
        )
    if d.get("n") and d["mean"] < 0.05:
        lines.append(
            "**The teacher failed**: its pseudo-labels are (nearly) empty, so the students learned "
            "from empty masks on the weak cases; train longer (`--epochs`) before reading the "
            "student tables."
        )
    return lines


def tumour_free_sentence(results: Mapping[str, Mapping], teacher_doc: Mapping | None) -> str | None:
    """The tumour-free test cases (left out of every mean) and each model's false positives on them."""
    empty = sorted(
        {
            c["case"]
            for doc in results.values()
            if doc is not teacher_doc
            for c in doc.get("cases", [])
            if not is_tumour_case(c)
        }
    )
    if not empty:
        return None
    fps = "; ".join(
        f"{name} {tumour_free_text(tumour_free_summary(doc.get('cases', [])))}"
        for name, doc in results.items()
        if doc is not teacher_doc
    )
    return (
        f"{len(empty)} test case(s) have no tumour ({', '.join(empty[:5])}): they are left out of "
        f"every mean (an empty prediction scores DSC 100 % there) and counted apart: {fps}."
    )


def comparison_sentences(
    results: Mapping[str, Mapping], baseline: str, students: Sequence[str]
) -> list[str]:
    """Each student against the baseline on the same tumour test cases: mean difference, CI, test."""
    lines = []
    for s in students:
        if s not in results:
            continue
        cmp_ = paired_comparison(results[s], results[baseline])
        if not cmp_:
            continue
        p = (
            f"; Wilcoxon signed-rank p = {cmp_['p']:.2g}"
            if cmp_["p"] is not None
            else "; too few cases for a test"
        )
        verdict = (
            "a difference this run cannot tell from chance"
            if cmp_["p"] is None or cmp_["p"] >= 0.05
            else "a difference unlikely to be chance on these cases"
        )
        lines.append(
            f"{s} vs {baseline}: {100 * cmp_['mean']:+.1f} DSC points on average over "
            f"{cmp_['n']} tumour test cases (95 % bootstrap CI {100 * cmp_['low']:+.1f} to "
            f"{100 * cmp_['high']:+.1f}; better on {cmp_['better']}, worse on {cmp_['worse']}{p}): "
            f"{verdict}."
        )
    return lines


def copy_training_curves(fold_dirs: Mapping[str, Path], out_dir: Path) -> dict[str, Path]:
    """Copy nnU-Net's ``progress.png`` of each model's fold folder as ``training_<key>.png``."""
    out = {}
    for key, folder in fold_dirs.items():
        src = folder / "progress.png"
        if src.is_file():
            dst = out_dir / f"training_{key}.png"
            shutil.copyfile(src, dst)
            out[key] = dst
    return out


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def timings_table(timings: Sequence[Mapping]) -> str:
    """Wall time and CPU time (this process + nnU-Net's subprocesses) per step."""
    lines = ["| # | Step | Wall time | CPU time | Status |", "|---|---|---|---|---|"]
    for k, t in enumerate(timings, 1):
        lines.append(
            f"| {k} | {t['name']} | {_fmt_seconds(t.get('seconds'))} | "
            f"{_fmt_seconds(t.get('cpu_seconds'))} | {t.get('status', '')} |"
        )
    total = sum(t["seconds"] for t in timings if t.get("seconds"))
    cpu = sum(t["cpu_seconds"] for t in timings if t.get("cpu_seconds"))
    lines.append(
        f"| | **total (all runs)** | **{_fmt_seconds(total)}** | **{_fmt_seconds(cpu)}** | |"
    )
    lines += [
        "",
        "Wall time grows when other jobs share the machine; CPU time (user + system, summed over "
        "cores) does not, and on an otherwise idle machine with C cores the wall time is roughly "
        "between CPU time / C and CPU time.",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RunOutputs:
    """What a run produced that its report shows: evaluations, QC, the teacher guard and their folders."""

    results: Mapping[str, Mapping]  # model name -> evaluation summary.json
    teacher_name: str
    baseline_name: str
    student_names: Sequence[str]
    qc: Sequence[Mapping]  # the pseudo-labels' QC records
    test_images: Path | None
    test_labels: Path | None
    prediction_dirs: Mapping[str, Path]  # model name -> its test-set predictions
    weak_dir: Path | None
    pseudo_dir: Path | None
    fold_dirs: Mapping[str, Path]  # model key -> the fold folder with nnU-Net's progress.png
    weak_labels: Path | None = None
    guard: Mapping | None = None  # the teacher guard's nnts_guard.json
    extra_sections: Sequence[str] = ()  # Markdown sections after the students' table


FIGURE_CAPTIONS = {
    "test": "Test cases: true mask (green) and each model's prediction (red), DSC of the whole case.",
    "weak": "Weak cases, best to worst pseudo-label: boxes (yellow), pseudo-label (blue), truth (green, where known).",
    "bars": "DSC per model: bar = mean, whisker = std, dots = cases.",
    "fill": "Pseudo-label quality against box fill: the QC number a real weak set has, vs the DSC it "
    "cannot have.",
    "iou": "Box consistency of the pseudo-labels (QC `box_iou_mean`, `empty_boxes`): how well each "
    "pseudo-label's own box matches the box it was given.",
    "disagreement": "Teacher ensemble: how much its folds disagree per weak case (QC `disagreement`, "
    "1 − their mean pairwise DSC), and against the pseudo-label's DSC where known.",
}


def write_report(
    out_dir: Path, report: ReportSettings, timings: Sequence[Mapping], outputs: RunOutputs
) -> Path:
    """Write figures and ``report.md`` into ``out_dir``; returns the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = write_figures(outputs, out_dir)
    curves = copy_training_curves(outputs.fold_dirs, out_dir)
    summary = honest_summary(
        outputs.results,
        outputs.baseline_name,
        outputs.student_names,
        report.quick,
        outputs.results.get(outputs.teacher_name),
        report.caveat,
    )
    md = [f"# {report.title}", "", report.intro, "", "## What this run shows", "", summary, ""]
    md += teacher_section(outputs)
    md += students_section(outputs)
    for section in outputs.extra_sections:
        md += [section, ""]
    md += figures_section(figs, curves)
    md += closing_sections(report, timings)
    path = out_dir / "report.md"
    write_text_atomic("\n".join(md), path)
    path.chmod(0o644)  # a document to share, not a secret
    return path


def write_figures(outputs: RunOutputs, out_dir: Path) -> dict[str, Path | None]:
    """The report's figures (keys of :data:`FIGURE_CAPTIONS`); None or absent where there is nothing to show."""
    o = outputs
    figs: dict[str, Path | None] = {}
    if o.test_images and o.test_labels and o.test_labels.is_dir():
        figs["test"] = figure_test_cases(
            o.test_images, o.test_labels, o.prediction_dirs, out_dir / "test_cases.png"
        )
    if o.weak_dir and o.pseudo_dir and o.pseudo_dir.is_dir():
        figs["weak"] = figure_weak_cases(
            o.weak_dir, o.pseudo_dir, out_dir / "weak_cases.png", o.qc, o.weak_labels
        )
    figs["bars"] = figure_dsc_bars(o.results, out_dir / "dsc_per_model.png", teacher=o.teacher_name)
    figs["fill"] = figure_fill_vs_dsc(o.qc, out_dir / "pseudo_dsc_vs_box_fill.png")
    figs["iou"] = figure_box_consistency(o.qc, out_dir / "pseudo_box_consistency.png")
    figs["disagreement"] = figure_disagreement(o.qc, out_dir / "pseudo_ensemble_disagreement.png")
    return figs


def teacher_section(outputs: RunOutputs) -> list[str]:
    """The teacher's pseudo-labels against the weak cases' true masks: guard, table, DSC by box fill."""
    md = [
        "## Teacher: pseudo-labels of the weak set against the true masks (as the paper's Tables 2/4, %)",
        "",
    ]
    if outputs.guard:
        md += [guard_paragraph(outputs.guard), ""]
    teacher_doc = outputs.results.get(outputs.teacher_name)
    if teacher_doc:
        return md + [
            "Cells are mean ± std over weak cases, per source site and overall.",
            "",
            markdown_table({outputs.teacher_name: teacher_doc}, bold_best=False),
            "",
            "Pseudo-label DSC by how much of its boxes the pseudo-label fills (QC `box_fill_mean`):",
            "",
            fill_table(outputs.qc),
        ]
    pseudo_dir = outputs.pseudo_dir
    return md + [
        "_Not evaluated: the weak set has no true masks (real data), see the QC table "
        f"`{pseudo_dir / 'qc.csv' if pseudo_dir else 'qc.csv'}` instead._",
        "",
    ]


def students_section(outputs: RunOutputs) -> list[str]:
    """The baseline and the students on the held-out test set."""
    names = [outputs.baseline_name, *outputs.student_names]
    models = {n: outputs.results[n] for n in names if n in outputs.results}
    md = [
        "## Students vs the strong-only baseline on the held-out test set (as the paper's Tables 3/5, %)",
        "",
    ]
    if not models:
        return md + ["_No test-set evaluation (no test images or labels given)._", ""]
    return md + [
        "Cells are mean ± std over test cases; best mean in bold.",
        "",
        markdown_table(models),
        "",
    ]


def figures_section(figs: Mapping[str, Path | None], curves: Mapping[str, Path]) -> list[str]:
    """The figures written, with their captions, and nnU-Net's training curves."""
    md = ["## Figures", ""]
    for key, caption in FIGURE_CAPTIONS.items():
        if figs.get(key):
            md += [f"![{caption}]({figs[key].name})", "", f"_{caption}_", ""]
    for key, path in curves.items():
        md += [
            f"![nnU-Net training curves: {key}]({path.name})",
            "",
            f"_nnU-Net's training curves ({key})._",
            "",
        ]
    return md


def closing_sections(report: ReportSettings, timings: Sequence[Mapping]) -> list[str]:
    """Settings, timings, and the commands that continue the run or redo its steps by hand."""
    return [
        "## Settings",
        "",
        settings_table(report.run_settings),
        "",
        "## Timings",
        "",
        timings_table(timings),
        "",
        "## Continue with nnU-Net's own commands",
        "",
        "Every dataset, plan, preprocessed array and model is in nnU-Net's folders:",
        "",
        "```bash",
        *report.continue_lines,
        "```",
        "",
        "The steps of this run, as commands you can run by hand:",
        "",
        "```bash",
        *report.commands,
        "```",
        "",
    ]


def guard_paragraph(guard: Mapping) -> str:
    """What the teacher guard (``nnts_guard.json``) found: every attempt, and which one was kept."""
    attempts = guard.get("attempts", [])
    parts = [
        f"seed {a['seed']}: DSC {100 * (a['dsc_mean'] or 0):.1f} %, {a['empty_boxes']}/{a['boxes']} empty "
        f"box(es), {a.get('empty_substantial_boxes', a['empty_boxes'])} over a real cross-section "
        f"({'passed' if a['passed'] else 'failed'})"
        for a in attempts
    ]
    head = (
        f"**Teacher guard** (strong cases, fresh annotator boxes; passes at DSC >= "
        f"{100 * guard.get('min_dsc', 0.8):.0f} % with no empty box over a quarter or more of its lesion's "
        "largest cross-section): " + "; ".join(parts) + ". "
    )
    if not guard.get("final"):
        return head + "Not finished."
    if guard.get("passed"):
        tail = "Kept: seed {}{}.".format(
            guard["chosen_seed"],
            f", after {guard['retrained']} retraining(s)"
            if guard.get("retrained")
            else " (first attempt)",
        )
    else:
        tail = (
            f"**No attempt passed**: kept the best (seed {guard['chosen_seed']}); its pseudo-labels, and the "
            "students trained on them, carry its misses."
        )
    return head + tail


def _flatten(d: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if (
            isinstance(v, Mapping)
            and v
            and len(v) > 0
            and not all(isinstance(x, (int, float, str)) for x in v.values())
        ):
            rows += _flatten(v, key + ".")
        else:
            rows.append((key, v))
    return rows


def settings_table(settings: Mapping) -> str:
    """Settings as a two-column Markdown table (nested keys joined with dots, lists inline)."""
    lines = ["| Setting | Value |", "|---|---|"]
    for key, value in _flatten(json.loads(json.dumps(settings, default=str))):
        text = json.dumps(value) if not isinstance(value, str) else value
        lines.append(f"| `{key}` | {text.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def write_run_report(cfg, layout, report: ReportSettings, timings: Sequence[Mapping]) -> Path:
    """The report of a :class:`~..workflow.config.PipelineConfig` run, into ``<work>/report``."""
    return write_report(layout.work / "report", report, timings, run_outputs(cfg, layout))


def run_outputs(cfg, layout) -> RunOutputs:
    """What a :class:`~..workflow.config.PipelineConfig` run wrote, as its report reads it."""
    from ..teacher.guard import (
        load_guard,
    )  # imports nnU-Net's predictor: only when writing a report

    roles = [r for r in ("baseline", "so_nnunet", "so", "do") if r in cfg.train]
    round_roles = [
        cfg.round_role(m, k) for k in range(2, cfg.rounds + 1) for m in cfg.round_models()
    ]
    results = load_results(layout, ["teacher", *roles, *round_roles], cfg.model_names)
    qc_file = layout.pseudo / QC_FILE
    qc = json.loads(qc_file.read_text()).get("cases", []) if qc_file.is_file() else []
    name = cfg.model_name
    return RunOutputs(
        results=results,
        teacher_name=name("teacher"),
        baseline_name=name("baseline"),
        student_names=[
            name(r) for r in ("so_nnunet", "so", "do", *round_roles) if r in roles + round_roles
        ],
        qc=qc,
        test_images=cfg.test_images,
        test_labels=cfg.test_labels,
        prediction_dirs={name(r): layout.predictions(r) for r in roles + round_roles},
        weak_dir=cfg.weak_dir,
        pseudo_dir=layout.pseudo,
        weak_labels=cfg.weak_labels,
        fold_dirs={
            r: model_folder(cfg, r) / f"fold_{cfg.folds_for(r)[0]}" for r in ("teacher", *roles)
        },
        guard=load_guard(model_folder(cfg, "teacher"), cfg.folds_for("teacher")),
        extra_sections=[rounds_section(cfg, layout)] if cfg.rounds > 1 else [],
    )


def rounds_section(cfg, layout) -> str:
    """The noisy-student rounds as a table: a row per round, its pseudo-labels (who made them, DSC against the weak
    cases' true masks where known, mean label change since the previous round, cases dropped) and its students' DSC
    on the test set."""
    models = cfg.round_models()
    head = [
        "Round",
        "Pseudo-labels by",
        "Pseudo-label DSC (%)",
        "Label change (1 − DSC, %)",
        "Dropped",
        *(f"{cfg.model_name(m)} DSC (%)" for m in models),
    ]
    lines = [
        "## Noisy-student rounds",
        "",
        f"Round k + 1's pseudo-labels come from round k's {cfg.model_name(cfg.relabel_with)}, constrained to the "
        "boxes as the box teacher's are; the strong cases keep their true masks. Cells are means over cases.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]

    def pct(value) -> str:
        return "–" if value is None else f"{100 * value:.1f}"

    for k in range(1, cfg.rounds + 1):
        folder = layout.round_pseudo(k)
        qc = json.loads((folder / QC_FILE).read_text()) if (folder / QC_FILE).is_file() else {}
        cases = qc.get("cases", [])
        change = [c["label_change"] for c in cases if c.get("label_change") is not None]
        excluded = load_json(folder / EXCLUDED_FILE).get("excluded", [])
        ev = load_json(layout.evaluation(cfg.round_pseudo_role(k)) / "summary.json")
        by = (
            cfg.model_name("teacher")
            if k == 1
            else cfg.model_name(cfg.round_role(cfg.relabel_with, k - 1))
        )
        row = [
            str(k),
            by,
            pct(_overall_dsc(ev)),
            pct(float(np.mean(change)) if change else None),
            str(len(excluded)),
        ]
        for m in models:
            row.append(
                pct(
                    _overall_dsc(
                        load_json(layout.evaluation(cfg.round_role(m, k)) / "summary.json")
                    )
                )
            )
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _overall_dsc(doc: Mapping) -> float | None:
    return doc.get("summary", {}).get("overall", {}).get("dsc", {}).get("mean") if doc else None
