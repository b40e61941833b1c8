"""``bboxes=<file>``: the user's own person boxes instead of a detector.

Three file layouts, each matched to the inputs its own way:

- a COCO detection results list ``[{"image_id", "bbox", "score", "category_id"}, ...]``:
  ``image_id`` equals the numeric file stem (COCO's ``000000000785.jpg`` is image 785);
- a COCO annotation file (``images`` + ``annotations``): an annotation's image ``file_name``
  (its last path part) equals the input's file name; crowd annotations are left out;
- a map ``{"<file name or stem>": [[x, y, w, h(, score)], ...]}``.

Boxes are ``x, y, w, h`` in pixels (COCO) and are used as given: no score threshold, NMS or
limit (only boxes with a non-positive width or height, which no crop can use, and categories
other than person (1) are left out). An input no box refers to gets the configured fallback;
a file none of whose boxes matches any input is an error (:meth:`BoxFileDetector.check_inputs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sapiens_kit.detectors.base import Detections, PersonDetector
from sapiens_kit.detectors.postprocess import PostProcess
from sapiens_kit.errors import UserError


@dataclass
class BoxFile:
    """The person boxes of a box file, keyed the way its layout matches inputs.

    Attributes:
        path: The file.
        layout: ``results`` (keys: image ids), ``annotations`` (file names) or ``map``
            (file names or stems).
        boxes: key -> ``(N, 5)`` rows ``x1 y1 x2 y2 score``.
    """

    path: Path
    layout: str
    boxes: dict[Any, list[list[float]]] = field(default_factory=dict)

    def keys_for(self, name: str | Path) -> list[Any]:
        """The keys an input file ``name`` is looked up by, in order."""
        path = Path(name)
        match self.layout:
            case "results":
                return [int(path.stem)] if path.stem.isdigit() else []
            case "annotations":
                return [path.name]
            case _:
                return [path.name, path.stem]

    def lookup(self, name: str | Path) -> Detections | None:
        """The boxes given for input ``name``, or ``None`` if the file names none for it."""
        for key in self.keys_for(name):
            rows = self.boxes.get(key)
            if rows:
                table = np.asarray(rows, dtype=np.float32)
                return Detections(table[:, :4], table[:, 4], "bboxes")
        return None

    def describe(self) -> str:
        """How this file's boxes are matched, with a few of its keys (for error messages)."""
        how = {"results": "image_id = numeric file stem",
               "annotations": "images' file_name = input file name",
               "map": "key = input file name or stem"}[self.layout]
        some = ", ".join(repr(k) for k in list(self.boxes)[:3])
        return f"{how}; the file's keys include {some or 'nothing (no usable box)'}"


def _row(path: Path, box: Any, score: Any) -> list[float] | None:
    if not isinstance(box, Sequence) or len(box) < 4:
        raise UserError(f"bboxes={path}: box {box!r} must be [x, y, w, h]")
    try:
        x, y, w, h = (float(v) for v in box[:4])
        value = float(score)
    except (TypeError, ValueError):
        raise UserError(f"bboxes={path}: box {box!r} (score {score!r}) is not numbers") from None
    if w <= 0 or h <= 0:
        return None
    return [x, y, x + w, y + h, value]


def read_box_file(path: str | Path) -> BoxFile:
    """Read a box file in any of the three layouts (see the module docstring).

    Raises:
        UserError: (a ``DataFileError``) the file is missing or not JSON; (a ``UserError``) it
            is none of the layouts or a box is malformed.
    """
    from sapiens_kit.data.io import load_json

    path = Path(path)
    data = load_json(path, "box file (bboxes=)")
    if isinstance(data, list):
        out = BoxFile(path, "results")
        for i, det in enumerate(data):
            if not isinstance(det, Mapping) or "image_id" not in det or "bbox" not in det:
                raise UserError(f"bboxes={path}: detection #{i} needs 'image_id' and 'bbox'")
            if int(det.get("category_id", 1)) == 1:
                row = _row(path, det["bbox"], det.get("score", 1.0))
                if row:
                    out.boxes.setdefault(int(det["image_id"]), []).append(row)
        return out
    if isinstance(data, dict) and "annotations" in data and "images" in data:
        out = BoxFile(path, "annotations")
        names = {img["id"]: Path(img["file_name"]).name for img in data["images"]}
        for ann in data["annotations"]:
            if ann.get("iscrowd") or ann.get("image_id") not in names \
                    or int(ann.get("category_id", 1)) != 1:
                continue
            row = _row(path, ann.get("bbox"), ann.get("score", 1.0))
            if row:
                out.boxes.setdefault(names[ann["image_id"]], []).append(row)
        return out
    if isinstance(data, dict):
        out = BoxFile(path, "map")
        for key, boxes in data.items():
            if not isinstance(boxes, list):
                raise UserError(f"bboxes={path}: '{key}' must map to a list of [x, y, w, h]")
            for box in boxes:
                row = _row(path, box, box[4] if isinstance(box, Sequence) and len(box) > 4
                           else 1.0)
                if row:
                    out.boxes.setdefault(Path(str(key)).name, []).append(row)
        return out
    raise UserError(f"bboxes={path}: not a COCO detection list, a COCO annotation file or a "
                    "{file name: [[x, y, w, h], ...]} map")


class BoxFileDetector(PersonDetector):
    """Boxes from a :func:`read_box_file` file, used as given (source ``bboxes``).

    Args:
        path: The box file.
        post: Only its ``fallback`` applies (to inputs the file gives no box for).
        batch_size: Images per call (there is no model; it only sets the batching).
    """

    name = "bboxes"

    def __init__(self, path: str | Path, post: PostProcess, batch_size: int = 1) -> None:
        super().__init__(post, batch_size)
        self.file = read_box_file(path)

    def _detect_batch(self, images: list[np.ndarray], names: list[str]) -> list[Detections]:
        return [self.file.lookup(name) or Detections.empty("bboxes") for name in names]

    def _finish(self, raw: Detections, size: tuple[int, int]) -> Detections:
        return self.post.fallback_for(raw, size)

    def check_inputs(self, names: Sequence[str]) -> None:
        """Raise :class:`UserError` if no box of the file matches any of ``names``."""
        if names and not any(self.file.lookup(name) for name in names):
            raise UserError(f"bboxes={self.file.path}: no box matches any of the {len(names)} "
                            f"inputs (matched by {self.file.describe()})")


__all__ = ["BoxFile", "BoxFileDetector", "read_box_file"]
