"""nnU-Net's commands as child processes: streamed progress, logs, signals, CPU time, the device."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Mapping, Sequence

from ..core.errors import InputError


# nnU-Net output lines worth showing live (the rest goes to the log file)
PROGRESS_LINE = re.compile(
    r"Epoch \d+|train_loss|val_loss|Pseudo dice|Epoch time|Yayy|best ema|"
    r"Fingerprint extraction|Experiment planning|Preprocessing dataset|Configuration: |"
    r"predicting |Validation complete|Mean Validation Dice|Traceback|Error|error:",
    re.IGNORECASE,
)


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children, nnU-Net's workers included:
    unlike wall time, it does not grow when other jobs share the machine."""
    import resource

    return sum(
        r.ru_utime + r.ru_stime
        for r in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )


def run_command(
    args: Sequence[str],
    env: Mapping[str, str],
    log_file: Path | None = None,
    show: re.Pattern | None = PROGRESS_LINE,
    out=None,
) -> None:
    """Run a command, streaming the lines matching ``show`` (indented) and logging all output.
    A non-zero exit raises :class:`InputError` with the last lines and the log's path; Ctrl-C stops
    the child too."""
    out = out or sys.stdout
    tail: deque[str] = deque(maxlen=30)
    log = None
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_file, "a", buffering=1)  # line-buffered: a killed run keeps its log
        log.write(f"\n$ {shlex.join(args)}\n")
    try:
        # own process group: stopping the step also stops the workers nnU-Net spawns
        proc = subprocess.Popen(
            list(args),
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
    except FileNotFoundError as e:
        raise InputError(
            f"{args[0]}: command not found (is nnU-Net installed in this environment?)"
        ) from e
    try:
        for line in proc.stdout:
            line = line.rstrip()
            if not line:
                continue
            tail.append(line)
            if log:
                log.write(line + "\n")
            if show is not None and show.search(line):
                print(f"    {line.strip()}", file=out, flush=True)
        rc = proc.wait()
    except BaseException:
        _stop_group(proc)
        raise
    finally:
        if log:
            log.close()
    if rc != 0:
        where = f"; full log: {log_file}" if log_file else ""
        raise InputError(
            f"`{shlex.join(args)}` failed with exit code {rc}{where}; last output:\n"
            + "\n".join(tail)
        )


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the child's process group, SIGKILL after 10 s."""
    import signal

    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            os.killpg(proc.pid, signal.SIGKILL)  # leftover workers of a finished child
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


def calm_openmp() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless set: OpenMP threads sleep instead of spinning while they wait.
    nnU-Net sets torch to one thread per core on a CPU; on a machine shared with other jobs, spinning
    threads made training epochs 6-10x slower in our measurements (2 cores, load ~4); idle, it costs little.
    Must run before torch is imported (it reads the variable once)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def stop_children_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so :func:`run_command` stops its child before exiting."""
    import signal

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def nnunet_command(name: str) -> str:
    """An nnU-Net console script of this Python environment (else found on PATH)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


class PythonCall:
    """A call of ``module:function`` of this environment, shown as the ``python -c`` line that would make it;
    the module is imported only when called (listing steps stays fast)."""

    def __init__(self, target: str, *args):
        self.module, self.name = target.split(":")
        self.args = args

    def __call__(self):
        import importlib

        return getattr(importlib.import_module(self.module), self.name)(*self.args)

    def __str__(self) -> str:
        return shlex.join(
            [
                "python",
                "-c",
                f"from {self.module} import {self.name}; "
                f"{self.name}({', '.join(map(repr, self.args))})",
            ]
        )


def shown(command) -> str:
    """A command line (a list; console scripts by name) or a :class:`PythonCall` as the shell would take it."""
    return str(command) if isinstance(command, PythonCall) else shlex.join(str(a) for a in command)
