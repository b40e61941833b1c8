"""A photo cut short is refused and skipped like any unreadable image, never read half grey."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from sapiens_kit.data.io import DataFileError, image_problem, incomplete_image, read_rgb
from sapiens_kit.data.reliability import SKIPPED_KEY, SkipCorrupt
from tests.helpers import SHARED_DATA, predict_cfg, save_task_checkpoint, tiny_task

MINI = SHARED_DATA / "coco_person_masks_mini"
PHOTO = sorted((MINI / "images").glob("*.jpg"))[0]


def cut(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def test_a_half_jpeg_is_detected(tmp_path: Path) -> None:
    half = cut(PHOTO, tmp_path / "half.jpg")
    assert cv2.imread(str(half)) is not None  # what the decoder alone would hand on
    assert "truncated JPEG" in (incomplete_image(half) or "")
    assert "truncated JPEG" in (image_problem(half) or "")
    with pytest.raises(DataFileError, match=r"half\.jpg: unreadable image"):
        read_rgb(half)
    assert incomplete_image(PHOTO) is None and image_problem(PHOTO) is None
    assert read_rgb(PHOTO).shape[2] == 3


def test_trailing_bytes_after_a_complete_image_are_fine(tmp_path: Path) -> None:
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(PHOTO.read_bytes() + b"trailing data from a camera" * 300)
    assert incomplete_image(padded) is None
    png = tmp_path / "ok.png"
    cv2.imwrite(str(png), np.full((20, 30, 3), 90, np.uint8))
    assert incomplete_image(png) is None
    assert "truncated PNG" in (incomplete_image(cut(png, tmp_path / "cut.png", 0.8)) or "")


def test_a_truncated_training_image_is_skipped_and_listed(tmp_path: Path) -> None:
    from sapiens_kit.data.datasets.mask_folder import MaskFolder

    root = tmp_path / "data"
    shutil.copytree(MINI, root)
    victim = sorted((root / "images").glob("*.jpg"))[0]
    cut(victim, victim)
    names = json.loads((root / "classes.json").read_text())
    classes = names["classes"] if isinstance(names, dict) else names
    data = SkipCorrupt(MaskFolder(root, num_classes=len(classes), on_error="skip"))
    index = [s[0] for s in data.dataset.samples].index(victim)
    sample = data[index]
    assert sample["meta"][SKIPPED_KEY] == [str(victim)]


def test_predict_skips_and_lists_a_truncated_photo(tmp_path: Path) -> None:
    from sapiens_kit.predict import predict

    ckpt = save_task_checkpoint(tiny_task("seg"), tmp_path / "seg.ckpt")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / PHOTO.name).write_bytes(PHOTO.read_bytes())
    cut(PHOTO, folder / "half.jpg")
    out = tmp_path / "out"
    predict(predict_cfg("task=seg", f"ckpt={ckpt}", f"input={folder}"), out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 1
    assert [Path(s["path"]).name for s in summary["skipped"]] == ["half.jpg"]
    assert "truncated JPEG" in summary["skipped"][0]["reason"]
    assert not (out / "half_mask.png").exists()
