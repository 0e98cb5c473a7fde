"""Resumable steps: a :class:`Step` has a name, the equivalent shell command (printed, so users can run it
by hand), a ``done()`` check on its outputs and a ``run()``. A step that is one ``nnts`` command
(:func:`api_step`) calls that command's Python API in this process and shows its command line (a test parses
each shown command with the CLI and checks it gives the settings the step calls with). :func:`run_steps` prints ``[stage k/n] name`` and
the command, skips finished steps (so an interrupted run resumes), times the others and keeps the timings in
``timings.json``; a step whose inputs or settings changed since its outputs were made is redone."""

from __future__ import annotations

import contextlib
import importlib
import json
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..core.errors import InputError
from ..core.files import load_json, write_text_atomic
from .processes import cpu_seconds

PACKAGE = __package__.rsplit(".", 1)[0]


@dataclass(frozen=True)
class ApiCall:
    """What a step runs in this process: ``function(*args)``; a function named ``"module:name"`` (a module of
    this package) is imported when it runs, so listing steps stays fast. ``settings`` is the settings object
    among ``args`` (what the shown command line must give back: ``tests/experiments/test_steps_api.py``)."""

    function: Callable[..., Any] | str
    args: tuple = ()
    settings: Any = None

    def resolve(self) -> Callable[..., Any]:
        if callable(self.function):
            return self.function
        module, name = self.function.split(":")
        return getattr(importlib.import_module(f"{PACKAGE}.{module}"), name)


@dataclass
class Step:
    """One stage: ``command`` is the equivalent shell command shown to the user. ``inputs`` are the files and
    folders it reads from outside the pipeline (the user's data); ``clear`` removes its outputs so that a
    stale or forced step is made anew; ``call`` (steps of :func:`api_step`) the Python call it runs."""

    name: str
    command: str
    run: Callable[[], Any]
    done: Callable[[], bool] = lambda: False
    inputs: Callable[[], Sequence[Path]] = lambda: ()
    clear: Callable[[], None] = lambda: None
    call: Callable[[], ApiCall] | None = None


def api_step(
    name: str,
    argv: Sequence[object],
    call: Callable[[], ApiCall],
    done: Callable[[], bool],
    log: Path,
    inputs: Callable[[], Sequence[Path]] = lambda: (),
    clear: Callable[[], None] = lambda: None,
) -> Step:
    """The step that runs ``call()`` (the Python API of ``nnts ARGV``, decided when it runs: ``--overwrite``
    of stale outputs) in this process, what it prints going to ``log`` (progress bars stay on the screen);
    ``nnts ARGV`` is the command shown, and the step's settings in its fingerprint."""
    command = shlex.join(["nnts", *(str(a) for a in argv)])

    def run() -> None:
        api = call()
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", buffering=1) as f, contextlib.redirect_stdout(f):
            print(f"\n$ {command}")
            api.resolve()(*api.args)

    return Step(name, command, run, done, inputs, clear, call)


def files_stamp(paths: Sequence[Path | None]) -> list:
    """(path, size, mtime) of every file under ``paths``: what a step's outputs were made from."""
    out = []
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        files = (
            [path]
            if path.is_file()
            else sorted(p for p in path.rglob("*") if p.is_file())
            if path.is_dir()
            else []
        )
        out += [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
        if not files:
            out.append([str(path), None, None])
    return out


def step_fingerprint(step: Step, previous: str) -> str:
    """A hash of the step's command (its settings), its inputs' files and the previous step's fingerprint: a
    step's outputs are current only while it equals the one recorded when they were made. Computed when the
    step's turn comes (earlier steps may make its inputs)."""
    import hashlib

    return hashlib.sha256(
        json.dumps([step.command, files_stamp(list(step.inputs())), previous]).encode()
    ).hexdigest()


def _state(step: Step, fingerprint: str, record: Mapping) -> str:
    if not step.done():
        return "to do"
    made = record.get("fingerprint")
    return (
        "done" if made in (None, fingerprint) else "stale"
    )  # None: made before fingerprints were kept


def remove_paths(*paths: Path | None) -> None:
    """Remove files or folders (for a step's ``clear``)."""
    for p in paths:
        if p is None or not (p.exists() or p.is_symlink()):
            continue
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def step_states(steps: Sequence[Step], timings_file: Path | None) -> list[str]:
    """Per step: ``done``, ``stale`` (outputs there, made from other inputs or settings) or ``to do``."""
    old = {r["name"]: r for r in load_json(timings_file).get("steps", [])} if timings_file else {}
    states, previous = [], ""
    for step in steps:
        previous = step_fingerprint(step, previous)
        states.append(_state(step, previous, old.get(step.name, {})))
    return states


def run_steps(
    steps: Sequence[Step], timings_file: Path | None = None, out=None, force: Sequence[int] = ()
) -> list[dict]:
    """Run the unfinished steps in order; returns ``[{name, command, status, seconds, fingerprint}]``.

    ``timings_file`` keeps the seconds and fingerprints of steps finished by an earlier (interrupted) run. A
    step whose outputs are there but stale (see :func:`step_fingerprints`), or whose index (0-based) is in
    ``force``, is cleared and run again. A step whose ``done()`` is still false after ``run()`` is an error:
    its outputs are incomplete."""
    out = out or sys.stdout
    old = {r["name"]: r for r in load_json(timings_file).get("steps", [])} if timings_file else {}
    records: list[dict] = []
    fp = ""
    n = len(steps)

    def save() -> None:
        if timings_file:
            rest = [
                {"name": s.name, "command": s.command, "status": "pending", "seconds": None}
                for s in steps[len(records) :]
            ]
            write_text_atomic(json.dumps({"steps": records + rest}, indent=1), timings_file)

    for k, step in enumerate(steps, 1):
        fp = step_fingerprint(step, fp)
        state = _state(step, fp, old.get(step.name, {}))
        if state == "done" and k - 1 not in force:
            prev = old.get(step.name, {})
            print(f"[stage {k}/{n}] {step.name}: done already, skipped", file=out, flush=True)
            print(f"  $ {step.command}", file=out, flush=True)
            records.append(
                {
                    "name": step.name,
                    "command": step.command,
                    "status": "done in an earlier run",
                    "seconds": prev.get("seconds"),
                    "cpu_seconds": prev.get("cpu_seconds"),
                    "fingerprint": fp,
                }
            )
            save()
            continue
        why = (
            "forced"
            if k - 1 in force
            else "outputs made from other inputs or settings"
            if state == "stale"
            else ""
        )
        print(
            f"[stage {k}/{n}] {step.name}" + (f" (redone: {why})" if why else ""),
            file=out,
            flush=True,
        )
        print(f"  $ {step.command}", file=out, flush=True)
        if why:
            step.clear()
        t0, c0 = time.perf_counter(), cpu_seconds()
        step.run()
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        if not step.done():
            raise InputError(
                f"step '{step.name}' finished but its outputs are incomplete (command: {step.command})"
            )
        print(f"  ... {step.name}: {seconds:.1f} s (CPU {cpu:.1f} s)", file=out, flush=True)
        records.append(
            {
                "name": step.name,
                "command": step.command,
                "status": "ran",
                "seconds": seconds,
                "cpu_seconds": cpu,
                "fingerprint": fp,
            }
        )
        save()
    return records
