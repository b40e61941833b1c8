"""Hugging Face ``datasets`` tables written out in the kit's folder layouts (an exporter).

The folder data modules hold all of the kit's checks and pipelines (label validation, invalid-pixel
reports, top-down crops, COCO keypoint AP) and the tasks' overlays re-read image files, so a
``datasets`` table is exported once to the matching layout and read from there. A
:class:`Layout` says how one kind of label is written:

- ``seg`` (:class:`MaskLayout`): ``images/`` + ``masks/`` (PNG class ids) and ``classes.json``;
- ``pose`` (:class:`CocoLayout`): ``images/`` + a COCO ``annotations.json`` (one entry per person);
- any dense target, e.g. ``depth`` / ``normal`` (:class:`DenseLayout`): ``images/`` + the
  target's folder (each cell written by :meth:`DenseTarget.write_hf`: ``.npy``, or the PNG as
  stored) and ``mask/`` when a foreground column is given.

Encoded images are copied byte for byte (no re-encoding). The export is keyed by the dataset's
fingerprint and the column mapping, written to a temporary folder and renamed when complete, so
it happens once and an interrupted export is never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from sapiens_kit.data.io import DataFileError, as_array, image_size
from sapiens_kit.data.targets import DenseTarget, TargetSpec, get_target, list_targets

log = logging.getLogger(__name__)

_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif"}
VAL_SPLITS = ("validation", "val", "valid", "test")


def load_splits(path: str, name: str | None = None, **load_kwargs: Any) -> dict[str, Any]:
    """``{split: Dataset}`` from a ``save_to_disk`` folder, or through ``load_dataset`` (Hub
    names and local folders of images/parquet/...)."""
    import datasets

    folder = Path(path).expanduser()
    if folder.is_dir() and any((folder / f).is_file() for f in
                               ("dataset_dict.json", "state.json")):
        loaded = datasets.load_from_disk(str(folder))
    else:
        try:
            loaded = datasets.load_dataset(path, name, **load_kwargs)
        except FileNotFoundError as err:
            raise DataFileError(f"{path}: no such dataset folder or Hub dataset ({err})") from err
    return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}


def write_image(value: Any, stem: Path, where: str) -> Path:
    """Write an image cell (encoded bytes, a file path, PIL or array) as ``stem.<ext>``."""
    if isinstance(value, Mapping) and value.get("bytes"):
        data = value["bytes"]
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                fmt = im.format
        except Exception as err:
            raise DataFileError(f"{where}: image bytes are not a readable image ({err})") from err
        if fmt in _FORMATS:
            path = stem.with_suffix(_FORMATS[fmt])
            path.write_bytes(data)
            return path
    elif isinstance(value, Mapping) and value.get("path") and Path(value["path"]).is_file():
        src = Path(value["path"])
        if src.suffix.lower() in _FORMATS.values() or src.suffix.lower() == ".jpeg":
            path = stem.with_suffix(src.suffix.lower())
            shutil.copyfile(src, path)
            return path
    arr = as_array(value, "image", where)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, -1)
    path = stem.with_suffix(".png")
    cv2.imwrite(str(path), cv2.cvtColor(arr[..., :3].astype(np.uint8), cv2.COLOR_RGB2BGR))
    return path


# ------------------------------------------------------------------------------------ layouts
class Layout:
    """How one kind of label is written to a folder layout, one split at a time.

    Attributes:
        name: The ``task`` spelling of this layout (``seg``, ``pose``, ``depth``, ...).
        reader: Which folder data module reads the export (``mask_folder``, ``coco`` or
            ``dense_folder``).
        role: Column role of the label column (``mask``, ``keypoints``, the target key).
        optional_roles: Extra column roles the layout uses when given (``foreground``, ``bbox``).
    """

    reader: ClassVar[str]
    name: str
    role: str
    optional_roles: tuple[str, ...] = ()

    def begin(self, out: Path, columns: Mapping[str, str]) -> dict[str, Any]:
        """Make the split's folders; returns the state :meth:`write` and :meth:`end` share."""
        return {}

    def write(self, state: dict[str, Any], row: Mapping[str, Any], columns: Mapping[str, str],
              out: Path, stem: str, image: Path, index: int, where: str) -> None:
        """Write the labels of one row whose image was written to ``image``."""
        raise NotImplementedError

    def end(self, state: dict[str, Any], out: Path) -> dict[str, Any]:
        """Finish the split; returns facts found on the way."""
        return {}

    def finish(self, root: Path, facts: Mapping[str, Mapping[str, Any]],
               classes: str | Sequence[str] | None) -> None:
        """Finish the whole export (files shared by the splits)."""


class MaskLayout(Layout):
    """Seg: ``masks/<stem>.png`` class ids, and ``classes.json`` unless a preset/file is named."""

    reader = "mask_folder"

    def __init__(self) -> None:
        self.name, self.role = "seg", "mask"

    def begin(self, out: Path, columns: Mapping[str, str]) -> dict[str, Any]:
        """``masks/``; tracks the largest class id seen."""
        (out / "masks").mkdir()
        return {"max_label": -1}

    def write(self, state: dict[str, Any], row: Mapping[str, Any], columns: Mapping[str, str],
              out: Path, stem: str, image: Path, index: int, where: str) -> None:
        """One class-id PNG (colour-coded masks are refused)."""
        mask = as_array(row[columns[self.role]], self.role, where)
        if mask.ndim == 3 and (mask == mask[..., :1]).all():
            mask = mask[..., 0]
        if mask.ndim != 2 or mask.min() < 0 or mask.max() > 255:
            raise DataFileError(f"{where}: masks must be (H, W) class ids 0..255, got shape "
                                f"{mask.shape} (a colour-coded mask needs converting to ids)")
        path = out / "masks" / f"{stem}.png"
        cv2.imwrite(str(path), mask.astype(np.uint8))
        ids = np.unique(np.asarray(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))).astype(int)
        state["max_label"] = max(state["max_label"], int(ids[ids != 255].max(initial=-1)))

    def end(self, state: dict[str, Any], out: Path) -> dict[str, Any]:
        """``max_label``: the largest class id (255 = ignore left out)."""
        return {"max_label": state["max_label"]}

    def finish(self, root: Path, facts: Mapping[str, Mapping[str, Any]],
               classes: str | Sequence[str] | None) -> None:
        """``classes.json`` from the given names, else ``class_0..N``."""
        if classes is None or not isinstance(classes, str):
            n = max(f["max_label"] for f in facts.values()) + 1
            names = list(classes) if classes is not None else [f"class_{i}" for i in range(n)]
            (root / "classes.json").write_text(json.dumps({"classes": names}))


def _person_box(kps: np.ndarray, pad: float = 0.1) -> list[float]:
    seen = kps[kps[:, 2] > 0, :2]
    if not len(seen):
        return [0.0, 0.0, 0.0, 0.0]
    (x0, y0), (x1, y1) = seen.min(0), seen.max(0)
    w, h = x1 - x0, y1 - y0
    return [float(x0 - pad * w), float(y0 - pad * h), float(w * (1 + 2 * pad)),
            float(h * (1 + 2 * pad))]


def _pose_annotations(row: Mapping[str, Any], columns: Mapping[str, str], kset: Any,
                      image_id: int, first_id: int, where: str) -> list[dict[str, Any]]:
    people = row[columns["keypoints"]] or []
    boxes = row.get(columns.get("bbox", ""), None) if columns.get("bbox") else None
    k = kset.num_keypoints
    anns = []
    for j, person in enumerate(people):
        flat = np.asarray(person, dtype=np.float32).reshape(-1)
        if flat.size != 3 * k:
            raise DataFileError(f"{where}: person {j} has {flat.size} keypoint values; keypoint "
                                f"set '{kset.name}' needs {k} x 3 (x, y, visibility)")
        kps = flat.reshape(k, 3)
        bbox = [float(v) for v in boxes[j]] if boxes is not None else _person_box(kps)
        ann: dict[str, Any] = {"id": first_id + j, "image_id": image_id, "category_id": 1,
                               "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0}
        start = 0
        for fld, count in kset.annotation_fields:
            ann[fld] = kps[start : start + count].reshape(-1).round(3).tolist()
            start += count
        anns.append(ann)
    return anns


class CocoLayout(Layout):
    """Pose: one COCO ``annotations.json`` per split, one annotation per person."""

    reader = "coco"

    def __init__(self, keypoints: Any = None) -> None:
        self.name, self.role, self.optional_roles = "pose", "keypoints", ("bbox",)
        self.keypoints = keypoints

    def begin(self, out: Path, columns: Mapping[str, str]) -> dict[str, Any]:
        """Collects images and annotations."""
        if self.keypoints is None:
            raise ValueError("the pose layout needs a keypoint set (CocoLayout(keypoints=...))")
        return {"images": [], "annotations": []}

    def write(self, state: dict[str, Any], row: Mapping[str, Any], columns: Mapping[str, str],
              out: Path, stem: str, image: Path, index: int, where: str) -> None:
        """One image entry and its people."""
        h, w = image_size(image)
        state["images"].append({"id": index + 1, "file_name": image.name, "width": w,
                                "height": h})
        state["annotations"] += _pose_annotations(row, columns, self.keypoints, index + 1,
                                                  len(state["annotations"]) + 1, where)

    def end(self, state: dict[str, Any], out: Path) -> dict[str, Any]:
        """Write ``annotations.json``."""
        (out / "annotations.json").write_text(json.dumps({
            "images": state["images"], "annotations": state["annotations"],
            "categories": [{"id": 1, "name": "person"}]}))
        return {}


class DenseLayout(Layout):
    """A dense target: its folder, each cell written by the target, plus ``mask/`` from an
    optional ``foreground`` column."""

    reader = "dense_folder"

    def __init__(self, target: TargetSpec) -> None:
        self.target: DenseTarget = get_target(target)
        self.name = self.role = self.target.key
        self.optional_roles = ("foreground",)

    def begin(self, out: Path, columns: Mapping[str, str]) -> dict[str, Any]:
        """The target folder, and ``mask/`` with a foreground column."""
        (out / self.target.folder_names[0]).mkdir()
        if columns.get("foreground"):
            (out / "mask").mkdir()
        return {}

    def write(self, state: dict[str, Any], row: Mapping[str, Any], columns: Mapping[str, str],
              out: Path, stem: str, image: Path, index: int, where: str) -> None:
        """The target file (and the foreground PNG, > 0 = person)."""
        self.target.write_hf(row[columns[self.role]], out / self.target.folder_names[0] / stem,
                             where)
        if columns.get("foreground"):
            fg = as_array(row[columns["foreground"]], "foreground", where)
            cv2.imwrite(str(out / "mask" / f"{stem}.png"),
                        ((fg[..., 0] if fg.ndim == 3 else fg) > 0).astype(np.uint8) * 255)


#: The label kinds that are not dense targets, by their ``task`` spelling.
LAYOUTS: dict[str, type[Layout]] = {"seg": MaskLayout, "pose": CocoLayout}

#: What :func:`get_layout` accepts.
HFTask = str | Layout | DenseTarget


def get_layout(task: HFTask | Mapping[str, Any], keypoints: Any = None) -> Layout:
    """The layout of ``task``: a :class:`Layout` as is, ``seg``/``pose``, else a dense target
    (a registered key, a :class:`DenseTarget` or a ``{_target_: ...}`` config)."""
    if isinstance(task, Layout):
        return task
    if isinstance(task, str) and task in LAYOUTS:
        kind = LAYOUTS[task]
        return kind(keypoints) if kind is CocoLayout else kind()
    try:
        return DenseLayout(task)
    except ValueError:
        raise ValueError(f"task must be one of {', '.join([*LAYOUTS, *list_targets()])} or a "
                         f"DenseTarget, got {task!r}") from None


# ------------------------------------------------------------------------------------ export
def export_split(dataset: Any, out: Path, task: HFTask, columns: Mapping[str, str],
                 keypoints: Any = None) -> dict[str, Any]:
    """Write one split in the folder layout of ``task``; returns facts found on the way
    (``max_label`` for seg, ``rows``)."""
    from datasets import Image as ImageFeature

    layout = get_layout(task, keypoints)
    missing = [f"'{c}' (data.{role}_column)" for role, c in columns.items()
               if c and c not in dataset.column_names]
    if missing:
        raise DataFileError(f"dataset has no column {', '.join(missing)}; its columns are "
                            f"{dataset.column_names}")
    if isinstance(dataset.features[columns["image"]], ImageFeature):  # keep the encoded bytes
        dataset = dataset.cast_column(columns["image"], ImageFeature(decode=False))
    (out / "images").mkdir(parents=True)
    state = layout.begin(out, columns)
    for i, row in enumerate(dataset):
        where, stem = f"row {i}", f"{i:06d}"
        path = write_image(row[columns["image"]], out / "images" / stem, where)
        layout.write(state, row, columns, out, stem, path, i, where)
    return {"max_label": -1, **layout.end(state, out), "rows": len(dataset)}


def export_dataset(splits: Mapping[str, Any], cache_dir: Path, task: HFTask,
                   columns: Mapping[str, str], classes: str | Sequence[str] | None = None,
                   keypoints: Any = None) -> Path:
    """Export ``{"train": ds, "val": ds}`` once into ``cache_dir``; returns the folder."""
    layout = get_layout(task, keypoints)
    key = json.dumps({"fp": {k: getattr(d, "_fingerprint", None) for k, d in splits.items()},
                      "task": layout.name, "columns": dict(columns), "classes": classes,
                      "keypoints": getattr(keypoints, "name", None), "v": 1}, sort_keys=True)
    root = cache_dir / f"hf_{layout.name}_{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    if (root / ".complete").is_file():
        return root
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".partial-", dir=cache_dir))
    try:
        facts = {name: export_split(ds, tmp / name, layout, columns, keypoints)
                 for name, ds in splits.items()}
        layout.finish(tmp, facts, classes)
        (tmp / ".complete").write_text(key)
        log.info("Exported %s rows to %s", {k: f["rows"] for k, f in facts.items()}, root)
        if root.exists():  # a half-finished earlier export
            shutil.rmtree(root)
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


__all__ = ["LAYOUTS", "VAL_SPLITS", "CocoLayout", "DenseLayout", "HFTask", "Layout",
           "MaskLayout", "export_dataset", "export_split", "get_layout", "load_splits",
           "write_image"]
