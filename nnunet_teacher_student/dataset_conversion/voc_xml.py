"""PASCAL-VOC box files (one per annotated slice), parsed safely with defusedxml.

A file holds ``<size><width/><height/></size>`` and ``<object><name>CLASS</name><bndbox>
<xmin/><ymin/><xmax/><ymax/></bndbox></object>`` items, in pixel column/row of its slice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from ..core.errors import InputError


class VocError(InputError):
    """A malformed or unsafe annotation file."""


@dataclass(frozen=True)
class VocBox:
    """One box of a slice: class name and inclusive pixel bounds (column = x, row = y)."""

    label: str
    xmin: int
    ymin: int
    xmax: int
    ymax: int


@dataclass(frozen=True)
class VocFile:
    path: Path
    width: int | None
    height: int | None
    boxes: list[VocBox]


def _int(elem: Element | None, tag: str, path: Path) -> int:
    node = None if elem is None else elem.find(tag)
    if node is None or node.text is None or not node.text.strip():
        raise VocError(f"{path}: missing <{tag}>")
    try:
        value = float(node.text.strip())
    except ValueError as e:
        raise VocError(f"{path}: <{tag}> is not a number: {node.text.strip()!r}") from e
    if value != int(value):
        raise VocError(f"{path}: <{tag}> is not a whole pixel index: {value}")
    return int(value)


def parse_voc(path: str | os.PathLike, max_bytes: int = 1_000_000) -> VocFile:
    """Read one VOC file; raise :class:`VocError` naming the file for anything malformed or unsafe
    (entities, DTDs, external references are refused by defusedxml)."""
    path = Path(path)
    try:
        if path.stat().st_size > max_bytes:
            raise VocError(f"{path}: {path.stat().st_size} bytes, too large for an annotation file")
        root = SafeET.parse(path, forbid_dtd=True).getroot()
    except DefusedXmlException as e:
        raise VocError(f"{path}: unsafe XML refused ({type(e).__name__}: {e})") from e
    except ParseError as e:
        raise VocError(f"{path}: malformed XML ({e})") from e
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise VocError(f"{path}: unreadable ({e})") from e
    if root.tag != "annotation":
        raise VocError(f"{path}: root element <{root.tag}>, expected <annotation>")
    size = root.find("size")
    width = (
        _int(size, "width", path) if size is not None and size.find("width") is not None else None
    )
    height = (
        _int(size, "height", path) if size is not None and size.find("height") is not None else None
    )
    boxes = []
    for obj in root.findall("object"):
        name = (obj.findtext("name") or "").strip()
        bb = obj.find("bndbox")
        if bb is None:
            raise VocError(f"{path}: an <object> without <bndbox>")
        box = VocBox(name, *(_int(bb, tag, path) for tag in ("xmin", "ymin", "xmax", "ymax")))
        if box.xmin > box.xmax or box.ymin > box.ymax:
            raise VocError(f"{path}: inverted box {box}")
        boxes.append(box)
    if not boxes:
        raise VocError(f"{path}: no <object> boxes")
    return VocFile(path, width, height, boxes)
