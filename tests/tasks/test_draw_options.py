"""Drawing options: predict's draw.keypoint_threshold / draw.alpha reach the task's draw hook."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from sapiens_kit.predict import predict
from tests.helpers import predict_cfg, save_task_checkpoint, tiny_task

GREY = 100


def weak_person(k: int = 17) -> dict[str, object]:
    """One person whose keypoints all score 0.1, as a weak (e.g. random-init) model gives."""
    rng = np.random.default_rng(0)
    points = np.stack([rng.uniform(10, 50, k), rng.uniform(10, 70, k)], 1).astype(np.float32)
    return {"keypoints": points, "scores": np.full(k, 0.1, np.float32),
            "meta": {"bbox": [5.0, 5.0, 50.0, 70.0]}}


def skeleton_pixels(picture: np.ndarray) -> int:
    """Pixels that are neither the grey photo nor the white person box."""
    grey = (picture == GREY).all(-1)
    white = (picture == 255).all(-1)
    return int((~grey & ~white).sum())


def test_low_keypoint_threshold_draws_the_skeleton_the_default_omits() -> None:
    task = tiny_task("pose")
    photo = np.full((80, 60, 3), GREY, np.uint8)
    person = [weak_person()]
    assert skeleton_pixels(task.draw(photo, person)) == 0  # default 0.3: nothing above it
    assert skeleton_pixels(task.draw(photo, person, keypoint_threshold=0.05)) > 50
    # Set once (as predict does from draw.*): every later picture uses it; None keeps defaults.
    task.set_draw_options(keypoint_threshold=0.05, alpha=None)
    drawn = task.draw(photo, person)
    assert skeleton_pixels(drawn) > 50
    assert np.array_equal(drawn, task.draw(photo, person, keypoint_threshold=None))
    task.set_draw_options(keypoint_threshold=0.05, alpha=0.5)
    faint = task.draw(photo, person)
    changed = (drawn != photo).any(-1)
    assert (np.abs(faint[changed].astype(int) - GREY) < np.abs(drawn[changed].astype(int) - GREY)
            + 1).all()
    assert not np.array_equal(faint, drawn)


def test_seg_alpha_sets_the_overlay_opacity() -> None:
    task = tiny_task("seg")
    photo = np.full((20, 10, 3), GREY, np.uint8)
    label = torch.zeros(20, 10, dtype=torch.uint8)
    label[5:10] = 2
    item = [{"label": label, "meta": {}}]
    half = task.draw(photo, item)
    full = task.draw(photo, item, alpha=1.0)
    none = task.draw(photo, item, alpha=0.0)
    assert np.array_equal(none, photo) and not np.array_equal(half, full)
    assert np.array_equal(full[5:10, 0], np.array(task.palette[2], np.uint8)[None].repeat(5, 0))


def test_predict_passes_draw_options_to_the_pose_overlays(tmp_path: Path) -> None:
    assert predict_cfg("input=x").draw == {"keypoint_threshold": None, "alpha": None}
    ckpt = save_task_checkpoint(tiny_task("pose"), tmp_path / "pose.ckpt")
    image = tmp_path / "in" / "person.jpg"
    image.parent.mkdir()
    rng = np.random.default_rng(1)
    cv2.imwrite(str(image), rng.integers(0, 255, (64, 48, 3), dtype=np.uint8))
    overlays = {}
    for name, threshold in (("none", 1e6), ("all", -1.0)):
        out = tmp_path / name
        predict(predict_cfg("task=pose", f"ckpt={ckpt}", f"input={image}",
                            f"draw.keypoint_threshold={threshold}"), out)
        overlays[name] = cv2.imread(str(out / "person_overlay.jpg"))
    assert np.abs(overlays["all"].astype(int) - overlays["none"].astype(int)).sum() > 1000
