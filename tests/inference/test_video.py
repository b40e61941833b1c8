"""predict on a video end to end: people found, tracked, posed, smoothed; H.264 overlay."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from sapiens_kit.inference.video import predict_video
from sapiens_kit.utils.config import CONFIG_DIR
from tests.helpers import tiny_task

SIZE = (96, 128)  # (H, W)
FRAMES = 8
EMPTY = 4  # a frame with nobody in it
COLOURS = ((230, 60, 60), (60, 200, 60))  # RGB of the two people


@dataclass
class Detections:
    """Stand-in for ``sapiens_kit.detectors.Detections`` (same fields)."""

    boxes: np.ndarray
    scores: np.ndarray
    source: str = "detector"


class BlobDetector:
    """Stand-in person detector: the boxes of the coloured blobs on the grey background."""

    batch_size = 3

    def __init__(self) -> None:
        self.calls: list[int] = []

    def detect(self, images: Sequence[np.ndarray], names: Sequence[str]) -> list[Detections]:
        assert len(images) == len(names) <= self.batch_size
        self.calls.append(len(images))
        out = []
        for image in images:
            mask = (np.abs(image.astype(int) - 90).max(-1) > 50).astype(np.uint8)
            count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            boxes = [[x, y, x + w, y + h] for x, y, w, h, area in stats[1:count] if area > 30]
            out.append(Detections(np.array(boxes, np.float32).reshape(-1, 4),
                                  np.full(len(boxes), 0.9, np.float32)))
        return out


def people_at(frame: int) -> list[tuple[int, int, int, int]]:
    """Boxes (x1, y1, x2, y2) of the two people: one walks right, one walks left below it."""
    if frame == EMPTY:
        return []
    return [(6 + 5 * frame, 8, 30 + 5 * frame, 44), (90 - 5 * frame, 50, 114 - 5 * frame, 90)]


def write_video(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10, SIZE[::-1])
    for frame in range(FRAMES):
        image = np.full((*SIZE, 3), 90, np.uint8)
        for (x1, y1, x2, y2), colour in zip(people_at(frame), COLOURS, strict=False):
            image[y1:y2, x1:x2] = colour[::-1]  # BGR
        writer.write(image)
    writer.release()
    return path


def video_cfg(**extra: object) -> OmegaConf:
    cfg = {"video_stride": 1, "max_frames": None, "batch_size": 3, "accelerator": "cpu",
           "mask_dir": None, "tracker": {"lost_track_buffer": 30}, "smoothing": None,
           "detector": {"padding": 1.25}}
    cfg.update(extra)
    return OmegaConf.create(cfg)


@pytest.fixture(scope="module")
def pose_task() -> object:
    return tiny_task("pose")


def test_pose_video_tracks_every_person(pose_task: object, tmp_path: Path) -> None:
    video = write_video(tmp_path / "in" / "walk.mp4")
    detector = BlobDetector()
    smoothing = OmegaConf.load(f"{CONFIG_DIR}/smoothing/one_euro.yaml")
    entry = predict_video(pose_task, video, tmp_path / "out", video_cfg(smoothing=smoothing),
                          detector=detector)
    records = entry.pop("results")

    # One record per person per frame, with frame and track id; two people, two ids, kept
    # through the empty frame; none in the empty frame.
    per_frame = Counter(r["frame"] for r in records)
    assert per_frame == {f: 2 for f in range(FRAMES) if f != EMPTY}
    assert {r["track_id"] for r in records} == {1, 2}
    for frame in per_frame:
        assert sorted(r["track_id"] for r in records if r["frame"] == frame) == [1, 2]
    first = {r["track_id"]: r["bbox"][0] for r in records if r["frame"] == 0}
    last = {r["track_id"]: r["bbox"][0] for r in records if r["frame"] == FRAMES - 1}
    walks_right = max(first, key=lambda t: last[t] - first[t])
    assert last[walks_right] > first[walks_right] + 20  # the same id follows the same person
    for r in records:
        assert r["category_id"] == 1 and len(r["keypoints"]) == 17 * 3 and r["score"] >= 0
        assert r["image_id"] == r["frame"] and r["video"] == str(video)
    assert detector.calls == [3, 3, 2]  # frames detected in batches of the detector's size

    # Summary entry, per-frame files (the frame with nobody in it too, with no instances, as
    # for a photo) and the browser-playable overlay.
    assert entry["frames"] == FRAMES and entry["codec"] == "h264"
    assert (entry["people"], entry["tracks"], entry["smoothing"]) == (14, 2, "one_euro")
    files = sorted((tmp_path / "out" / "walk_frames").glob("*_keypoints.json"))
    assert len(files) == FRAMES
    assert json.loads(files[EMPTY].read_text())["instances"] == []
    record = json.loads(files[0].read_text())
    assert record["image"] == str(video) and record["frame"] == 0
    assert len(record["instances"]) == 2
    with av.open(str(tmp_path / "out" / "walk_overlay.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == SIZE[::-1]
        assert sum(1 for _ in container.decode(stream)) == FRAMES


def test_smoothing_changes_only_what_it_should(pose_task: object, tmp_path: Path) -> None:
    video = write_video(tmp_path / "in" / "walk.mp4")
    raw = predict_video(pose_task, video, tmp_path / "raw", video_cfg(), BlobDetector())
    smooth = predict_video(pose_task, video, tmp_path / "smooth", video_cfg(
        smoothing={"name": "one_euro", "min_cutoff": 0.5, "beta": 0.0}), BlobDetector())

    def points(entry: dict) -> dict[tuple[int, int], np.ndarray]:
        return {(r["frame"], r["track_id"]): np.array(r["keypoints"]).reshape(-1, 3)
                for r in entry["results"]}

    a, b = points(raw), points(smooth)
    assert a.keys() == b.keys()
    assert np.array_equal(a[(0, 1)], b[(0, 1)])  # a track's first frame passes unchanged
    later = [k for k in a if k[0] > 0]
    assert any(not np.allclose(a[k][:, :2], b[k][:, :2]) for k in later)
    assert all(np.array_equal(a[k][:, 2], b[k][:, 2]) for k in a)  # scores untouched


def test_without_a_detector_each_frame_is_one_whole_image_person(pose_task: object,
                                                                 tmp_path: Path) -> None:
    video = write_video(tmp_path / "in" / "walk.mp4")
    entry = predict_video(pose_task, video, tmp_path / "out", video_cfg(max_frames=3))
    assert [(r["frame"], r["track_id"]) for r in entry["results"]] == [(0, 0), (1, 0), (2, 0)]
    assert entry["results"][0]["bbox"] == [0.0, 0.0, float(SIZE[1]), float(SIZE[0])]


def test_whole_image_task_keeps_its_video(tmp_path: Path) -> None:
    video = write_video(tmp_path / "in" / "clip.mp4")
    entry = predict_video(tiny_task("seg"), video, tmp_path / "out",
                          video_cfg(video_stride=2, batch_size=2), detector=BlobDetector())
    assert entry["results"] == [] and entry["frames"] == FRAMES // 2
    assert "track_id" not in entry and "people" not in entry
    masks = sorted(p.name for p in (tmp_path / "out" / "clip_frames").glob("*_mask.png"))
    assert masks == [f"clip_{i:06d}_mask.png" for i in range(0, FRAMES, 2)]


def test_the_old_import_still_works() -> None:
    from sapiens_kit.predict import predict_video as old

    assert old.resolve() is predict_video  # bound lazily: the app imports no torch at --help


def test_track_ids_are_written_over_their_boxes() -> None:
    from sapiens_kit.callbacks.video_writer import label_tracks

    image = np.full((60, 80, 3), 90, np.uint8)
    tracked = [{"meta": {"track_id": 7, "bbox": [10, 30, 20, 20]}}]
    whole = [{"meta": {"track_id": 0, "bbox": [0, 0, 80, 60]}}]
    assert np.array_equal(label_tracks(image, whole), image)
    changed = np.argwhere((label_tracks(image, tracked) != image).any(-1))
    assert len(changed) and changed[:, 0].max() < 30  # above the box
