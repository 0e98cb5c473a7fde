"""The run report's PNG figures (matplotlib, Agg backend), and the helpers every report's figures share:

- ``test_cases.png``: axial slices of test CTs with the true mask and each model's prediction;
- ``weak_cases.png``: weak CTs with their boxes, the teacher's pseudo-label and (phantoms) the true mask;
- ``dsc_per_model.png``: DSC per model (bars: mean, dots: cases);
- ``pseudo_dsc_vs_box_fill.png``: pseudo-label DSC against how much of its boxes it fills;
- ``pseudo_box_consistency.png``: the pseudo-labels' agreement with their boxes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import SimpleITK as sitk

from ..core.geometry import read_header, read_image


WINDOW_HU = (-1000.0, 400.0)


COLOURS = {"truth": "#00d000", "prediction": "#ff3030", "box": "#ffd400", "pseudo": "#30a0ff"}


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed); imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt, fig, out: Path) -> Path:
    """Lay out, write ``out`` (PNG, 110 dpi; its folder made) and close the figure; returns ``out``."""
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def percent_scatter(
    ax,
    x: Sequence[float],
    y: Sequence[float],
    title: str,
    xlabel: str,
    ylabel: str = "pseudo-label DSC vs true mask (%)",
) -> None:
    """A scatter of percentages on 0-100 axes."""
    ax.scatter(x, y, s=18, color="#3182bd")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(read_image(path))


def best_slice(mask: np.ndarray) -> int:
    """Axial slice with the most foreground (the middle slice of an empty mask)."""
    area = mask.reshape(mask.shape[0], -1).sum(axis=1)
    return int(area.argmax()) if area.any() else mask.shape[0] // 2


def _show_ct(ax, ct_slice: np.ndarray, aspect: float) -> None:
    """The slice in the lung window, or its own range when it is not in HU (pre-scaled images, e.g. [0, 1])."""
    hu = float(np.min(ct_slice)) < -100 or float(np.max(ct_slice)) > 100
    ax.imshow(
        ct_slice,
        cmap="gray",
        vmin=WINDOW_HU[0] if hu else float(np.min(ct_slice)),
        vmax=WINDOW_HU[1] if hu else float(np.max(ct_slice)),
        aspect=aspect,
        interpolation="nearest",
    )
    ax.set_xticks([])
    ax.set_yticks([])


def _contour(ax, mask: np.ndarray, colour: str, fill: bool = False) -> None:
    if mask.any():
        if fill:
            ax.imshow(
                np.ma.masked_where(mask == 0, mask),
                cmap="autumn",
                alpha=0.35,
                interpolation="nearest",
            )
        ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=1.2)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else 1.0


def _aspect(path: Path) -> float:
    sp = read_header(path).spacing
    return sp[1] / sp[0]


def _ct_path(images: Path, case: str) -> Path:
    for name in (f"{case}_0000.nii.gz", f"{case}.nii.gz"):
        if (images / name).is_file():
            return images / name
    raise FileNotFoundError(f"{images}: no CT for case {case}")


def _crop_box(*masks: np.ndarray, margin: int = 12) -> tuple[slice, slice]:
    """In-plane window around the union of masks (whole slice when empty)."""
    union = np.zeros_like(masks[0], dtype=bool)
    for m in masks:
        union |= m > 0
    if not union.any():
        return slice(None), slice(None)
    ys, xs = np.nonzero(union)
    h, w = union.shape
    size = max(ys.max() - ys.min(), xs.max() - xs.min()) + 2 * margin
    cy, cx = (ys.max() + ys.min()) // 2, (xs.max() + xs.min()) // 2
    y0, x0 = max(0, cy - size // 2), max(0, cx - size // 2)
    return slice(y0, min(h, y0 + size)), slice(x0, min(w, x0 + size))


def figure_test_cases(
    images: Path,
    labels: Path,
    predictions: Mapping[str, Path],
    out: Path,
    cases: Sequence[str] | None = None,
    n_cases: int = 3,
) -> Path | None:
    """Rows: test cases; columns: CT with the true mask, then each model's prediction (red) over the
    true mask (green contour), cropped around the tumour, with the case's DSC."""
    plt = pyplot()
    all_cases = sorted(p.name[:-7] for p in labels.glob("*.nii.gz"))
    cases = list(cases or _pick_cases(labels, all_cases, n_cases))
    if not cases:
        return None
    cols = 1 + len(predictions)
    fig, axes = plt.subplots(
        len(cases), cols, figsize=(2.6 * cols, 2.7 * len(cases)), squeeze=False
    )
    for r, case in enumerate(cases):
        ct_path = _ct_path(images, case)
        ct, gt = _array(ct_path), _array(labels / f"{case}.nii.gz")
        z = best_slice(gt)
        preds = {
            name: _array(folder / f"{case}.nii.gz")
            for name, folder in predictions.items()
            if (folder / f"{case}.nii.gz").is_file()
        }
        win = _crop_box(gt[z], *(p[z] for p in preds.values()))
        aspect = _aspect(ct_path)
        ax = axes[r][0]
        _show_ct(ax, ct[z][win], aspect)
        _contour(ax, gt[z][win], COLOURS["truth"])
        ax.set_title(f"{case} z={z}\ntruth", fontsize=8)
        for c, name in enumerate(predictions, 1):
            ax = axes[r][c]
            _show_ct(ax, ct[z][win], aspect)
            if name in preds:
                _contour(ax, preds[name][z][win], COLOURS["prediction"], fill=True)
                title = f"{name}\nDSC {100 * _dice(preds[name], gt):.1f} (3-D)"
            else:
                title = f"{name}\n(no prediction)"
            _contour(ax, gt[z][win], COLOURS["truth"])
            ax.set_title(title, fontsize=8)
    fig.suptitle("Test cases: truth (green contour), prediction (red)", fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(plt, fig, out)


def _pick_cases(labels: Path, cases: Sequence[str], n: int) -> list[str]:
    """Up to ``n`` cases with a tumour, spread over tumour sizes (largest, median, smallest)."""
    sizes = {c: int((_array(labels / f"{c}.nii.gz") > 0).sum()) for c in cases}
    with_tumour = sorted((c for c in cases if sizes[c] > 0), key=lambda c: -sizes[c])
    if len(with_tumour) <= n:
        return with_tumour or list(cases[:n])
    idx = np.unique(np.linspace(0, len(with_tumour) - 1, n).round().astype(int))
    return [with_tumour[i] for i in idx]


def figure_weak_cases(
    weak_dir: Path,
    pseudo_dir: Path,
    out: Path,
    qc: Sequence[Mapping] = (),
    labels_dir: Path | None = None,
    n_cases: int = 4,
) -> Path | None:
    """Weak cases: CT with boxes (yellow), the teacher's pseudo-label (blue) and the true mask
    (green contour, when known), on the slice with the largest box."""
    from matplotlib.patches import Rectangle

    from ..formats.weak_set import WeakSet

    plt = pyplot()
    weak = WeakSet(weak_dir, labels_dir)
    done = [c for c in weak.case_ids() if (pseudo_dir / f"{c}.nii.gz").is_file()]
    if not done:
        return None
    dsc = {r["case"]: r.get("dice_vs_truth") for r in qc}
    ranked = sorted(done, key=lambda c: (dsc.get(c) is None, -(dsc.get(c) or 0)))
    idx = np.unique(np.linspace(0, len(ranked) - 1, min(n_cases, len(ranked))).round().astype(int))
    cases = [ranked[i] for i in idx]  # best to worst pseudo-label
    fig, axes = plt.subplots(1, len(cases), figsize=(3.0 * len(cases), 3.3), squeeze=False)
    for ax, case in zip(axes[0], cases):
        ct_img, boxset = weak.read_case(case)
        ct = sitk.GetArrayFromImage(ct_img)
        pseudo = _array(pseudo_dir / f"{case}.nii.gz")
        truth = _array(weak.label_path(case)) if weak.has_labels(case) else None
        areas = {}
        for b in boxset.boxes:
            areas[b.slice] = areas.get(b.slice, 0) + (b.ymax - b.ymin + 1) * (b.xmax - b.xmin + 1)
        z = max(areas, key=areas.get) if areas else best_slice(pseudo)
        boxes_here = [b for b in boxset.boxes if b.slice == z]
        box_mask = np.zeros(ct.shape[1:], np.uint8)
        for b in boxes_here:
            box_mask[b.ymin : b.ymax + 1, b.xmin : b.xmax + 1] = 1
        win = _crop_box(box_mask, pseudo[z], margin=14)
        _show_ct(ax, ct[z][win], ct_img.GetSpacing()[1] / ct_img.GetSpacing()[0])
        y0, x0 = win[0].start or 0, win[1].start or 0
        for b in boxes_here:
            ax.add_patch(
                Rectangle(
                    (b.xmin - x0 - 0.5, b.ymin - y0 - 0.5),
                    b.xmax - b.xmin + 1,
                    b.ymax - b.ymin + 1,
                    fill=False,
                    edgecolor=COLOURS["box"],
                    linewidth=1.2,
                    linestyle="--",
                )
            )
        _contour(ax, pseudo[z][win], COLOURS["pseudo"])
        if truth is not None:
            _contour(ax, truth[z][win], COLOURS["truth"])
        d = dsc.get(case)
        ax.set_title(
            f"{case} z={z}" + (f"\npseudo-label DSC {100 * d:.1f}" if d is not None else ""),
            fontsize=8,
        )
    fig.suptitle("Weak cases: box (yellow), pseudo-label (blue), truth (green)", fontsize=10)
    return save_figure(plt, fig, out)


def _overall_cases(doc: Mapping) -> list[float]:
    return [
        c["dsc"] for c in doc.get("cases", []) if c.get("dsc") is not None and not _isnan(c["dsc"])
    ]


def _isnan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


def figure_dsc_bars(
    results: Mapping[str, Mapping], out: Path, teacher: str | None = None
) -> Path | None:
    """Mean DSC per model (bar, ± std) with one dot per case; the teacher's bar (weak set) hatched."""
    plt = pyplot()
    names = [n for n in results if _overall_cases(results[n])]
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(names), 3.6))
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        vals = 100 * np.asarray(_overall_cases(results[name]))
        ax.bar(
            i,
            vals.mean(),
            yerr=vals.std(),
            capsize=4,
            color="#9ecae1" if name != teacher else "#fdd0a2",
            edgecolor="black",
            hatch="//" if name == teacher else None,
        )
        ax.scatter(i + rng.uniform(-0.2, 0.2, vals.size), vals, s=10, color="black", zorder=3)
        ax.text(i + 0.3, min(vals.mean() + 2, 95), f"{vals.mean():.1f}", ha="left", fontsize=8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([n.replace(" (", "\n(") for n in names], fontsize=8)
    ax.set_ylabel("DSC (%)")
    ax.set_ylim(0, 100)
    ax.set_title(
        "DSC per model (test set; hatched: pseudo-labels on the weak set)"
        if teacher in names
        else "DSC per model (test set)",
        fontsize=9,
    )
    return save_figure(plt, fig, out)


def figure_fill_vs_dsc(qc: Sequence[Mapping], out: Path) -> Path | None:
    """Scatter: pseudo-label DSC (vs the true mask) against its mean box fill."""
    pts = [
        (r["box_fill_mean"], r["dice_vs_truth"])
        for r in qc
        if r.get("box_fill_mean") is not None and r.get("dice_vs_truth") is not None
    ]
    if not pts:
        return None
    plt = pyplot()
    x, y = (100 * np.asarray(v) for v in zip(*pts))
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    if len(pts) >= 3 and np.std(x) > 0 and np.std(y) > 0:
        r = float(np.corrcoef(x, y)[0, 1])
        title = f"Pseudo-labels: DSC vs box fill (r = {r:.2f}, n = {len(pts)})"
    else:
        title = f"Pseudo-labels: DSC vs box fill (n = {len(pts)})"
    percent_scatter(ax, x, y, title, "mean fraction of each box filled by the pseudo-label (%)")
    return save_figure(plt, fig, out)


def qc_histogram(
    qc: Sequence[Mapping],
    key: str,
    out: Path,
    title: str,
    xlabel: str,
    scatter_title: str,
    scatter_label: str,
    color: str = "#3182bd",
) -> Path | None:
    """A QC number per weak case (``key``, a fraction) as a histogram in %, and against the pseudo-label's DSC where
    the true mask is known; None when no case has it. ``title`` may use ``{n}`` (the cases)."""
    rows = [r for r in qc if r.get(key) is not None]
    if not rows:
        return None
    plt = pyplot()
    known = [r for r in rows if r.get("dice_vs_truth") is not None]
    fig, axes = plt.subplots(
        1, 2 if known else 1, figsize=(8.4 if known else 4.2, 3.6), squeeze=False
    )
    ax = axes[0][0]
    ax.hist(100 * np.array([r[key] for r in rows]), bins=np.linspace(0, 100, 21), color=color)
    ax.set_title(title.format(n=len(rows)), fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("weak cases")
    if known:
        percent_scatter(
            axes[0][1],
            [100 * r[key] for r in known],
            [100 * r["dice_vs_truth"] for r in known],
            f"{scatter_title} (n = {len(known)})",
            scatter_label,
        )
    return save_figure(plt, fig, out)


def figure_box_consistency(qc: Sequence[Mapping], out: Path) -> Path | None:
    """Box consistency per weak case (mean IoU of each given box and the pseudo-label's own tight box, and
    its empty boxes), and against the pseudo-label's DSC where the true mask is known."""
    empty = sum(r.get("empty_boxes") or 0 for r in qc if r.get("box_iou_mean") is not None)
    return qc_histogram(
        qc,
        "box_iou_mean",
        out,
        f"Box consistency: {{n}} cases, {empty} empty box(es)",
        "mean IoU of given box and pseudo-label's box (%)",
        "DSC vs box consistency",
        "mean box IoU (%)",
    )


def figure_disagreement(qc: Sequence[Mapping], out: Path) -> Path | None:
    """A teacher ensemble's disagreement per weak case (histogram), and against the pseudo-label's DSC where the
    true mask is known; None without an ensemble."""
    return qc_histogram(
        qc,
        "disagreement",
        out,
        "Teacher ensemble disagreement ({n} cases)",
        "1 - mean pairwise DSC of the members (%)",
        "DSC vs disagreement",
        "disagreement (%)",
        color="#756bb1",
    )
