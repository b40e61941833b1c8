"""Prediction inputs: the images and videos under ``input=``, found recursively and streamed.

A folder of 100k photos is never listed into memory as decoded images: :func:`walk_inputs`
yields paths one at a time in a fixed order (sorted names, depth first), so every run, resumed
or sharded, sees the inputs in the same order. Outputs mirror the input tree through
:func:`relative`.

Image ids (the ``image_id`` of COCO ``results.json`` records) come from a COCO annotation file
when ``bboxes=`` is one (matched by ``file_name``), else from :func:`stable_image_id`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sapiens_kit.data.io import IMAGE_SUFFIXES, image_problem
from sapiens_kit.data.video import VIDEO_SUFFIXES
from sapiens_kit.errors import UserError

#: First id given to an image whose file stem is not a number (above any 12-digit COCO id).
HASHED_ID_BASE = 10**12


def is_image(path: Path) -> bool:
    """Whether ``path`` has an image suffix."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def is_video(path: Path) -> bool:
    """Whether ``path`` has a video suffix."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def walk_inputs(root: Path) -> Iterator[Path]:
    """The image and video files at ``root`` (a file, or a folder searched recursively), one at
    a time, sorted by name within each folder, sub-folders in place (depth first).

    Hidden files and folders (``.name``) are left out, and folder links are not followed (no
    loops).
    """
    if root.is_file():
        yield root
        return

    def visit(folder: Path) -> Iterator[Path]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                yield from visit(path)
            elif entry.is_file() and (is_image(path) or is_video(path)):
                yield path

    yield from visit(root)


def relative(path: Path, root: Path) -> Path:
    """``path`` relative to ``input=`` (just the file name when the input is one file)."""
    return Path(path.name) if root.is_file() else path.relative_to(root)


def stable_image_id(rel: Path) -> int:
    """An image id that depends only on the input's path relative to ``input=``.

    A numeric file stem keeps its number (COCO's ``000000000785.jpg`` is 785); any other name
    gets ``10**12`` plus the first 40 bits of the SHA-1 of its relative path (``/``-separated),
    the same in every run, shard and resume.
    """
    if rel.stem.isdigit():
        return int(rel.stem)
    digest = hashlib.sha1(rel.as_posix().encode("utf-8")).digest()
    return HASHED_ID_BASE + int.from_bytes(digest[:5], "big")


def annotation_ids(bboxes: str | Path | None) -> dict[str, int]:
    """``file_name -> id`` of a COCO annotation file given as ``bboxes=`` (its ``images``);
    empty for any other box file. Both the full ``file_name`` and its last part are keys."""
    if not bboxes:
        return {}
    try:
        data = json.loads(Path(bboxes).read_text())
    except (OSError, ValueError):
        return {}  # the detector reports a bad box file
    if not (isinstance(data, dict) and isinstance(data.get("images"), list)):
        return {}
    ids: dict[str, int] = {}
    for image in data["images"]:
        if isinstance(image, dict) and "file_name" in image and "id" in image:
            name = str(image["file_name"])
            ids[Path(name).as_posix()] = int(image["id"])
            ids.setdefault(Path(name).name, int(image["id"]))
    return ids


def image_id(rel: Path, ids: Mapping[str, int]) -> int:
    """The id of the input at ``rel``: from the annotation file's ``ids``, else stable."""
    for key in (rel.as_posix(), rel.name):
        if key in ids:
            return ids[key]
    return stable_image_id(rel)


@dataclass
class InputScan:
    """What one pass over the file names found (nothing decoded)."""

    images: int = 0
    videos: list[Path] = field(default_factory=list)


def scan_inputs(root: Path) -> InputScan:
    """Check ``input=`` and count its inputs, without decoding any image.

    A single unreadable image is an error; in a folder, unreadable images are found (and
    skipped, listed in ``summary.json``) while the run streams through them.
    """
    if not root.exists():
        raise UserError(f"{root}: input does not exist")
    suffixes = ", ".join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    if root.is_file():
        if not (is_image(root) or is_video(root)):
            raise UserError(f"{root}: not an image or video file ({suffixes})")
        if is_image(root) and (reason := image_problem(root)) is not None:
            raise UserError(f"{root}: unreadable image ({reason})")
    scan = InputScan()
    for path in walk_inputs(root):
        if is_video(path):
            scan.videos.append(path)
        else:
            scan.images += 1
    if not scan.images and not scan.videos:
        raise UserError(f"{root}: folder holds no images or videos ({suffixes}), also in its "
                        "sub-folders")
    return scan


__all__ = ["HASHED_ID_BASE", "InputScan", "annotation_ids", "image_id", "is_image", "is_video",
           "relative", "scan_inputs", "stable_image_id", "walk_inputs"]
