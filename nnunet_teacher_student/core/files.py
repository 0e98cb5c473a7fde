"""Atomic file writes, JSON reading and file checksums: readers never see a half-written file."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import InputError


def tmp_sibling(path: Path) -> Path:
    """A new hidden temp file beside ``path`` with the permissions a plain create would give (umask)."""
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name.split('.')[0]}.",
        suffix=".tmp" + "".join(path.suffixes),
        dir=path.parent,
    )
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


def write_text_atomic(text: str, path: str | os.PathLike) -> None:
    """Atomic counterpart of ``Path.write_text``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_parsed_file(
    path: Path,
    parse: Callable[[str], Any],
    parse_errors: tuple[type[Exception], ...],
    missing: str,
    invalid: str,
    error: type[InputError] = InputError,
) -> Any:
    """``parse`` of the text of ``path``; ``error`` ``"{path}: {missing}"`` when there is no such file, and
    ``"{path}: {invalid} ({reason})"`` when it is not text or does not parse."""
    if not path.is_file():
        raise error(f"{path}: {missing}")
    try:
        return parse(path.read_text())
    except (*parse_errors, UnicodeDecodeError) as e:
        raise error(f"{path}: {invalid} ({e})") from e


def read_json_file(path: str | os.PathLike, what: str, error: type[InputError] = InputError):
    """The parsed JSON of ``path``; ``error`` naming the file and ``what`` it should be when it is missing
    or not JSON."""
    return read_parsed_file(
        Path(path),
        json.loads,
        (json.JSONDecodeError,),
        f"{what} does not exist",
        f"{what} is not valid JSON",
        error,
    )


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def load_json(path: Path) -> dict:
    """The JSON object of ``path``; ``{}`` when it is missing or not JSON (for progress and freshness checks)."""
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}
