"""The manifest (``manifest.json`` of ``nnts convert`` and ``nnts synth``): case -> split, patient, dataset or
site, and more. This is its one reader; ``dataset_conversion.splits`` builds and writes it."""

from __future__ import annotations

import os
from typing import Any, Mapping

from ..core.files import read_json_file

MANIFEST_FORMAT = "nnts-manifest"


def read_manifest(path: str | os.PathLike, what: str = "manifest") -> Any:
    """The parsed JSON of a manifest file; an error naming the file when it is missing or not JSON."""
    return read_json_file(path, what)


def manifest_cases(doc: Any) -> Any:
    """The ``{case: entry}`` part of a manifest document (a bare ``{case: entry}`` mapping is accepted too)."""
    return (
        doc["cases"] if isinstance(doc, Mapping) and isinstance(doc.get("cases"), Mapping) else doc
    )
