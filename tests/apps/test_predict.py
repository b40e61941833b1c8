"""predict on videos, folders with unreadable files, weights= and failures that leave nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from sapiens_kit.predict import predict
from sapiens_kit.utils.cli import UserError
from tests.helpers import SHARED_DATA, predict_cfg, save_task_checkpoint, tiny_task

FRAMES, SIZE = 5, (48, 64)  # (H, W) of the test video


def write_video(path: Path, frames: int = FRAMES, size: tuple[int, int] = SIZE) -> Path:
    """A short mp4 of a bright square moving over a grey background."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size[::-1])
    for i in range(frames):
        frame = np.full((*size, 3), 90, np.uint8)
        frame[10:30, 5 + 6 * i : 25 + 6 * i] = (40, 200, 240)
        writer.write(frame)
    writer.release()
    return path


def read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("ckpts")
    return {k: save_task_checkpoint(tiny_task(k), tmp / f"{k}.ckpt")
            for k in ("seg", "pose", "depth")}


def no_scratch_left(folder: Path) -> bool:
    return not any(".partial-" in p.name for p in folder.iterdir())


def test_seg_video_gives_annotated_video_and_per_frame_masks(
    ckpts: dict[str, Path], tmp_path: Path
) -> None:
    video = write_video(tmp_path / "in" / "clip.mp4")
    out = tmp_path / "out"
    predict(predict_cfg("task=seg", f"ckpt={ckpts['seg']}", f"input={video}"), out)
    frames = read_frames(out / "clip_overlay.mp4")
    assert len(frames) == FRAMES and frames[0].shape[:2] == SIZE
    masks = sorted((out / "clip_frames").glob("*_mask.png"))
    assert [m.name for m in masks] == [f"clip_{i:06d}_mask.png" for i in range(FRAMES)]
    assert cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED).shape == SIZE
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"][0]["frames"] == FRAMES and summary["skipped"] == []
    assert no_scratch_left(tmp_path) and sorted(p.name for p in (tmp_path / "in").iterdir()) == [
        "clip.mp4"]


def test_video_stride_and_max_frames(ckpts: dict[str, Path], tmp_path: Path) -> None:
    video = write_video(tmp_path / "in" / "clip.avi")
    out = tmp_path / "out"
    predict(predict_cfg("task=seg", f"ckpt={ckpts['seg']}", f"input={video}", "video_stride=2",
                        "max_frames=2", "batch_size=1"), out)
    assert len(read_frames(out / "clip_overlay.mp4")) == 2
    assert sorted(p.name for p in (out / "clip_frames").glob("*_mask.png")) == [
        "clip_000000_mask.png", "clip_000002_mask.png"]


def test_pose_video_records_name_the_video_and_frame(ckpts: dict[str, Path],
                                                    tmp_path: Path) -> None:
    video = write_video(tmp_path / "in" / "walk.mp4", frames=3)
    out = tmp_path / "out"
    predict(predict_cfg("task=pose", f"ckpt={ckpts['pose']}", f"input={video}"), out)
    records = [json.loads(p.read_text()) for p in
               sorted((out / "walk_frames").glob("*_keypoints.json"))]
    assert [r["frame"] for r in records] == [0, 1, 2]
    assert all(r["image"] == str(video) for r in records)
    assert len(records[0]["instances"][0]["keypoints"]) == 17
    assert len(read_frames(out / "walk_overlay.mp4")) == 3


def test_depth_video_shows_frame_and_depth_side_by_side(ckpts: dict[str, Path],
                                                       tmp_path: Path) -> None:
    video = write_video(tmp_path / "in" / "clip.mov", frames=2)
    out = tmp_path / "out"
    predict(predict_cfg("task=depth", f"ckpt={ckpts['depth']}", f"input={video}"), out)
    frames = read_frames(out / "clip_overlay.mp4")
    assert len(frames) == 2 and frames[0].shape[:2] == (SIZE[0], 2 * SIZE[1])
    depth = np.load(out / "clip_frames" / "clip_000001_depth.npy")
    assert depth.shape == SIZE and depth.dtype == np.float32


def test_folder_skips_and_reports_unreadable_images(ckpts: dict[str, Path],
                                                    tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"ok{i}.png"), np.full((40, 30, 3), 120, np.uint8))
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    (folder / "empty.png").write_bytes(b"")
    write_video(folder / "clip.mp4", frames=2)
    out = tmp_path / "out"
    predict(predict_cfg("task=seg", f"ckpt={ckpts['seg']}", f"input={folder}"), out)
    assert sorted(p.name for p in out.glob("*_mask.png")) == ["ok0_mask.png", "ok1_mask.png"]
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(Path(s["path"]).name for s in summary["skipped"]) == ["broken.jpg", "empty.png"]
    assert summary["images"] == 2 and summary["videos"][0]["frames"] == 2
    with pytest.raises(UserError, match="unreadable image"):
        predict(predict_cfg("task=seg", f"ckpt={ckpts['seg']}", f"input={folder / 'broken.jpg'}"),
                tmp_path / "out2")


def test_error_mid_run_leaves_nothing_behind(ckpts: dict[str, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from sapiens_kit.tasks.seg import SegmentationTask

    calls = {"n": 0}
    original = SegmentationTask.save_predictions

    def fail_second(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SegmentationTask, "save_predictions", fail_second)
    video = write_video(tmp_path / "in" / "clip.mp4")
    out = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        predict(predict_cfg("task=seg", f"ckpt={ckpts['seg']}", f"input={video}",
                            "batch_size=2"), out)
    assert calls["n"] == 2 and not (tmp_path / "new").exists()
    # An earlier output folder keeps what it had.
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "old.txt").write_text("x")
    (keep / "summary.json").write_text('{"task": "SegmentationTask", "skipped": []}')
    calls["n"] = 0
    with pytest.raises(RuntimeError):
        predict(predict_cfg("task=seg", f"ckpt={ckpts['seg']}", f"input={video}",
                            "batch_size=2", "overwrite=true"), keep)
    assert sorted(p.name for p in keep.iterdir()) == ["old.txt", "summary.json"]
    assert no_scratch_left(tmp_path)


def test_overwrite_replaces_the_previous_result_set_as_a_whole(ckpts: dict[str, Path],
                                                                tmp_path: Path) -> None:
    photos = sorted((SHARED_DATA / "coco_person_masks_mini" / "images").iterdir())[:2]
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, chosen in ((first, photos), (second, photos[1:])):
        folder.mkdir()
        for photo in chosen:
            (folder / photo.name).write_bytes(photo.read_bytes())
    out = tmp_path / "out"
    predict(predict_cfg("task=seg", f"ckpt={ckpts['seg']}", f"input={first}"), out)
    assert {p.name for p in out.iterdir()} >= {f"{photos[0].stem}_mask.png", "summary.json"}
    with pytest.raises(UserError, match="overwrite=true"):
        predict(predict_cfg("task=seg", f"ckpt={ckpts['seg']}", f"input={second}"), out)
    written = predict(predict_cfg("task=seg", f"ckpt={ckpts['seg']}", f"input={second}",
                                  "overwrite=true"), out)
    names = sorted(p.name for p in out.rglob("*")  # the hidden resume state left out
                   if p.is_file() and ".sapiens_kit" not in p.parts)
    assert not any(n.startswith(photos[0].stem) for n in names)  # nothing left of the old set
    assert sorted(p.name for p in written) == names and len(names) == 3  # mask, overlay, summary
    assert json.loads((out / "summary.json").read_text())["images"] == 1
    assert no_scratch_left(tmp_path)


def test_overwrite_refuses_a_folder_that_is_no_predict_output(ckpts: dict[str, Path],
                                                              tmp_path: Path) -> None:
    photo = sorted((SHARED_DATA / "coco_person_masks_mini" / "images").iterdir())[0]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match=r"no summary\.json"):
        predict(predict_cfg("task=seg", f"ckpt={ckpts['seg']}", f"input={photo}",
                            "overwrite=true"), mine)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]


def test_undecodable_video_is_one_error_line(ckpts: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "in" / "bad.mp4"
    bad.parent.mkdir()
    bad.write_bytes(os.urandom(2048))
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    res = subprocess.run([sys.executable, "-m", "sapiens_kit.predict", f"ckpt={ckpts['seg']}",
                          f"input={bad}", f"output={out}"], cwd=tmp_path, env=env, text=True,
                         capture_output=True, timeout=300)
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "cannot decode video" in last
    assert sum(line.startswith("error:") for line in res.stderr.splitlines()) == 1
    assert not out.exists() and no_scratch_left(tmp_path)


def test_weights_and_ckpt_rules(ckpts: dict[str, Path], tmp_path: Path) -> None:
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    cv2.imwrite(str(image), np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(UserError, match="not both"):
        predict(predict_cfg(f"ckpt={ckpts['seg']}", "weights=x.pth", f"input={image}"),
                tmp_path / "o1")
    with pytest.raises(UserError, match="ckpt=<run"):
        predict(predict_cfg(f"input={image}"), tmp_path / "o2")
    with pytest.raises(UserError, match="pretrain weights have no task head"):
        predict(predict_cfg("task=seg", "weights=sapiens_0_3b.pretrain_humans300m",
                            f"input={image}"), tmp_path / "o3")
    assert not any((tmp_path / f"o{i}").exists() for i in (1, 2, 3))


def test_official_task_file_with_weights(tmp_path: Path) -> None:
    """An mmengine-layout task checkpoint (backbone. + decode_head.) predicts without a ckpt."""
    import torch

    task = tiny_task("seg")
    state = {("decode_head." + k[5:] if k.startswith("head.") else k): v
             for k, v in task.state_dict().items() if k.startswith(("backbone.", "head."))}
    weights = tmp_path / "seg_task_epoch_10.pth"
    torch.save({"state_dict": state, "meta": {"epoch": 10}}, weights)
    classes = tmp_path / "classes.json"
    classes.write_text('{"classes": ["background", "part1", "part2"]}')
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    cv2.imwrite(str(image), np.full((30, 20, 3), 80, np.uint8))
    out = tmp_path / "out"
    predict(predict_cfg("task=seg", f"weights={weights}", "backbone=sapiens_test",
                        "img_size=[64,48]", "model.head.deconv_channels=[16]",
                        "model.head.conv_channels=[16]", f"data.classes={classes}",
                        f"input={image}"), out)
    mask = cv2.imread(str(out / "a_mask.png"), cv2.IMREAD_UNCHANGED)
    expected = task.predict_dataset([image])[0]
    with torch.no_grad():
        want = task.predict_step({"image": expected["image"][None],
                                  "meta": [expected["meta"]]}, 0)[0]["label"].numpy()
    assert np.array_equal(mask, want)
