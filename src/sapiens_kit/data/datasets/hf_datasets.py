"""Hugging Face ``datasets`` tables written out in the kit's folder layouts.

The folder data modules hold all of the kit's checks and pipelines (label validation, invalid-pixel
reports, top-down crops, COCO keypoint AP) and the tasks' overlays re-read image files, so a
``datasets`` table is exported once to the matching layout and read from there:

- ``seg``: ``images/`` + ``masks/`` (PNG class ids) and ``classes.json``;
- ``depth`` / ``normal``: ``images/`` + ``depth/`` or ``normal/`` (``.npy``, or the PNG as stored)
  and ``mask/`` when a foreground column is given;
- ``pose``: ``images/`` + a COCO ``annotations.json`` (one entry per person).

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
from typing import Any, Literal

import cv2
import numpy as np

from sapiens_kit.data.io import DataFileError, image_size

log = logging.getLogger(__name__)

HFTask = Literal["seg", "depth", "normal", "pose"]
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


def _pil(value: Any) -> Any:
    from PIL import Image

    if isinstance(value, Image.Image):
        return value
    if isinstance(value, Mapping) and (value.get("bytes") or value.get("path")):
        return Image.open(io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"])
    return None


def _array(value: Any, what: str, where: str) -> np.ndarray:
    image = _pil(value)
    arr = np.asarray(image) if image is not None else np.asarray(value)
    if arr.dtype == object or arr.ndim < 2:
        raise DataFileError(f"{where}: column '{what}' holds {type(value).__name__}, not an "
                            "image or an array")
    return arr


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
    arr = _array(value, "image", where)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, -1)
    path = stem.with_suffix(".png")
    cv2.imwrite(str(path), cv2.cvtColor(arr[..., :3].astype(np.uint8), cv2.COLOR_RGB2BGR))
    return path


def _write_target(task: str, value: Any, stem: Path, where: str) -> None:
    image = _pil(value)
    if task == "seg":
        mask = _array(value, "mask", where)
        if mask.ndim == 3 and (mask == mask[..., :1]).all():
            mask = mask[..., 0]
        if mask.ndim != 2 or mask.min() < 0 or mask.max() > 255:
            raise DataFileError(f"{where}: masks must be (H, W) class ids 0..255, got shape "
                                f"{mask.shape} (a colour-coded mask needs converting to ids)")
        cv2.imwrite(str(stem.with_suffix(".png")), mask.astype(np.uint8))
    elif task == "normal" and image is not None and image.mode == "RGB":
        # (n + 1) / 2 colour-coded normals: the folder reader decodes the PNG itself.
        cv2.imwrite(str(stem.with_suffix(".png")), cv2.cvtColor(np.asarray(image),
                                                                cv2.COLOR_RGB2BGR))
    else:
        np.save(stem.with_suffix(".npy"), _array(value, task, where).astype(np.float32))


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


def export_split(dataset: Any, out: Path, task: HFTask, columns: Mapping[str, str],
                 keypoints: Any = None) -> dict[str, Any]:
    """Write one split in the folder layout of ``task``; returns facts found on the way
    (``max_label`` for seg)."""
    from datasets import Image as ImageFeature

    missing = [f"'{c}' (data.{role}_column)" for role, c in columns.items()
               if c and c not in dataset.column_names]
    if missing:
        raise DataFileError(f"dataset has no column {', '.join(missing)}; its columns are "
                            f"{dataset.column_names}")
    if isinstance(dataset.features[columns["image"]], ImageFeature):  # keep the encoded bytes
        dataset = dataset.cast_column(columns["image"], ImageFeature(decode=False))
    target = {"seg": "masks", "depth": "depth", "normal": "normal", "pose": None}[task]
    (out / "images").mkdir(parents=True)
    if target:
        (out / target).mkdir()
    if columns.get("foreground"):
        (out / "mask").mkdir()
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    max_label = -1
    for i, row in enumerate(dataset):
        where, stem = f"row {i}", f"{i:06d}"
        path = write_image(row[columns["image"]], out / "images" / stem, where)
        if task == "pose":
            h, w = image_size(path)
            images.append({"id": i + 1, "file_name": path.name, "width": w, "height": h})
            annotations += _pose_annotations(row, columns, keypoints, i + 1,
                                             len(annotations) + 1, where)
            continue
        _write_target(task, row[columns["mask" if task == "seg" else task]],
                      out / str(target) / stem, where)
        if task == "seg":
            ids = np.unique(np.asarray(cv2.imread(str(out / "masks" / f"{stem}.png"),
                                                  cv2.IMREAD_UNCHANGED))).astype(int)
            max_label = max(max_label, int(ids[ids != 255].max(initial=-1)))
        if columns.get("foreground"):
            fg = _array(row[columns["foreground"]], "foreground", where)
            cv2.imwrite(str(out / "mask" / f"{stem}.png"),
                        ((fg[..., 0] if fg.ndim == 3 else fg) > 0).astype(np.uint8) * 255)
    if task == "pose":
        (out / "annotations.json").write_text(json.dumps({
            "images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person"}]}))
    return {"max_label": max_label, "rows": len(dataset)}


def export_dataset(splits: Mapping[str, Any], cache_dir: Path, task: HFTask,
                   columns: Mapping[str, str], classes: str | Sequence[str] | None = None,
                   keypoints: Any = None) -> Path:
    """Export ``{"train": ds, "val": ds}`` once into ``cache_dir``; returns the folder."""
    key = json.dumps({"fp": {k: getattr(d, "_fingerprint", None) for k, d in splits.items()},
                      "task": task, "columns": dict(columns), "classes": classes,
                      "keypoints": getattr(keypoints, "name", None), "v": 1}, sort_keys=True)
    root = cache_dir / f"hf_{task}_{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    if (root / ".complete").is_file():
        return root
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".partial-", dir=cache_dir))
    try:
        facts = {name: export_split(ds, tmp / name, task, columns, keypoints)
                 for name, ds in splits.items()}
        if task == "seg" and (classes is None or not isinstance(classes, str)):
            n = max(f["max_label"] for f in facts.values()) + 1
            names = list(classes) if classes is not None else [f"class_{i}" for i in range(n)]
            (tmp / "classes.json").write_text(json.dumps({"classes": names}))
        (tmp / ".complete").write_text(key)
        log.info("Exported %s rows to %s", {k: f["rows"] for k, f in facts.items()}, root)
        if root.exists():  # a half-finished earlier export
            shutil.rmtree(root)
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


__all__ = ["VAL_SPLITS", "export_dataset", "export_split", "load_splits", "write_image"]
