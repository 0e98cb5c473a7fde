"""Run a converter's per-case (or per-patient) tasks in parallel and summarise what happened.

A task is ``(name, kwargs)``; the worker function returns a :class:`TaskReport`. Any exception
in a task (bad input or an unforeseen failure) becomes a *skipped* result naming the task and
the error: one bad case never stops the run.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from tqdm import tqdm

from ..core.errors import InputError
from ..core.files import write_text_atomic

Status = Literal["converted", "resumed", "skipped"]
SUMMARY_NAME = "conversion_summary.json"


@dataclass
class CaseResult:
    """Outcome of one case: converted now, found finished by an earlier run, or skipped (with why)."""

    case: str
    status: Status
    reason: str = ""
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskReport:
    """What one task produced: case results, notes for the user, counters to add up."""

    results: list[CaseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    details: dict[str, dict] = field(
        default_factory=dict
    )  # e.g. {"unmatched_annotations": {patient: [...]}}


def _call(fn: Callable[..., TaskReport], name: str, kwargs: dict) -> TaskReport:
    """Run one task, turning any exception into a skipped result (runs inside the worker)."""
    try:
        return fn(**kwargs)
    except InputError as e:
        return TaskReport([CaseResult(name, "skipped", str(e))])
    except Exception as e:  # noqa: BLE001 - one broken case must not end the whole run
        return TaskReport([CaseResult(name, "skipped", f"unexpected {type(e).__name__}: {e}")])


def run_tasks(
    fn: Callable[..., TaskReport],
    tasks: list[tuple[str, dict]],
    num_processes: int = 1,
    desc: str = "converting",
) -> list[TaskReport]:
    """Run ``fn(**kwargs)`` for every task, in ``num_processes`` processes, with a progress bar."""
    reports: list[TaskReport] = []
    bar = tqdm(total=len(tasks), desc=desc, unit="case", disable=None, file=sys.stderr)
    if num_processes <= 1:
        for name, kwargs in tasks:
            reports.append(_call(fn, name, kwargs))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=num_processes) as pool:
            futures = {pool.submit(_call, fn, name, kwargs): name for name, kwargs in tasks}
            for fut in as_completed(futures):
                try:
                    reports.append(fut.result())
                except BrokenProcessPool as e:  # a worker died (e.g. out of memory)
                    reports.append(
                        TaskReport(
                            [CaseResult(futures[fut], "skipped", f"worker process died: {e}")]
                        )
                    )
                bar.update()
    bar.close()
    return reports


@dataclass
class Summary:
    """All task reports of one conversion run, with printing and a JSON dump."""

    converter: str
    source: str
    output: str
    reports: list[TaskReport]
    extra: dict[str, Any] = field(default_factory=dict)
    headline: list[str] = field(default_factory=list)  # converter-specific lines printed first

    @property
    def results(self) -> list[CaseResult]:
        return sorted((r for rep in self.reports for r in rep.results), key=lambda r: r.case)

    def cases(self, status: Status) -> list[CaseResult]:
        return [r for r in self.results if r.status == status]

    @property
    def notes(self) -> list[str]:
        return [n for rep in self.reports for n in rep.notes]

    @property
    def counts(self) -> dict[str, int]:
        total: Counter = Counter()
        for rep in self.reports:
            total.update(rep.counts)
        return dict(sorted(total.items()))

    @property
    def details(self) -> dict[str, dict]:
        merged: dict[str, dict] = {}
        for rep in self.reports:
            for key, value in rep.details.items():
                merged.setdefault(key, {}).update(value)
        return {k: dict(sorted(v.items())) for k, v in sorted(merged.items())}

    def to_dict(self) -> dict:
        return {
            "converter": self.converter,
            "source": self.source,
            "output": self.output,
            "converted": [r.case for r in self.cases("converted")],
            "resumed": [r.case for r in self.cases("resumed")],
            "skipped": {r.case: r.reason for r in self.cases("skipped")},
            "counts": self.counts,
            "notes": self.notes,
            **self.details,
            **self.extra,
        }

    def write(self, path: str | Path) -> None:
        write_text_atomic(json.dumps(self.to_dict(), indent=1), path)

    def text(self, max_lines: int = 50) -> str:
        """Human-readable summary; long lists of skips and notes are cut (the JSON has them all)."""
        conv, res, skip = self.cases("converted"), self.cases("resumed"), self.cases("skipped")
        lines = [
            f"{self.converter}: {self.source} -> {self.output}",
            *(f"  {h}" for h in self.headline),
            f"  {len(conv)} converted, {len(res)} already done (resumed), {len(skip)} skipped",
        ]
        lines += [f"  {key}: {n}" for key, n in self.counts.items()]
        for kind, items in (
            ("skipped", [f"{r.case}: {r.reason}" for r in skip]),
            ("note", self.notes),
        ):
            lines += [
                f"  {kind} {item}" if kind == "skipped" else f"  note: {item}"
                for item in items[:max_lines]
            ]
            if len(items) > max_lines:
                lines.append(f"  ... {len(items) - max_lines} more {kind} lines in {SUMMARY_NAME}")
        return "\n".join(lines)
