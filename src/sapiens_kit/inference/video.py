"""Predict on a video: decode, find and track people, run the task, smooth, write.

Per chunk of decoded frames (a detector batch), for a task that needs person boxes
(``task.needs_person_boxes``, top-down pose):

1. the detector finds the people of each frame (without a detector: the whole frame);
2. :class:`~sapiens_kit.inference.tracking.PersonTracker` gives each one a ``track_id`` that
   it keeps across frames;
3. the task predicts every person of the chunk (its ``predict_dataset(detections=...)``),
   batched across people and frames by ``trainer.predict``;
4. :class:`~sapiens_kit.inference.smoothing.OneEuroSmoother` smooths each track's keypoints
   (``smoothing=one_euro``);
5. per frame: the task's files in ``<stem>_frames/``, one annotated frame of
   ``<stem>_overlay.mp4`` (H.264), and COCO records with ``frame`` and ``track_id``.

Whole-image tasks (seg, depth, normal) skip steps 1, 2 and 4.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from sapiens_kit.data.io import read_rgb
from sapiens_kit.inference.smoothing import OneEuroSmoother, build_smoother
from sapiens_kit.inference.tracking import WHOLE_IMAGE_TRACK, PersonTracker

if TYPE_CHECKING:
    from sapiens_kit.detectors import Detections, PersonDetector

log = logging.getLogger("sapiens_kit")

#: Box enlargement of a person crop when the config names none (the official 1.25).
DEFAULT_PADDING = 1.25


class TrackedSamples(Dataset[dict[str, Any]]):
    """A frame chunk's person samples, each ``meta`` given the ``track_id`` of its box.

    The task's dataset says which box a sample was cropped from (``meta["bbox"]``, x y w h);
    it is matched to the nearest tracked box of the same frame, so the task may order or
    batch its crops as it likes.
    """

    def __init__(self, samples: Dataset[dict[str, Any]],
                 tracks: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
        self.samples, self.tracks = samples, tracks

    def __len__(self) -> int:
        return len(self.samples)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        meta = sample["meta"]
        boxes, ids = self.tracks.get(str(meta["path"]), (np.zeros((0, 4)), np.zeros(0, int)))
        track = WHOLE_IMAGE_TRACK
        if len(ids) and meta.get("bbox") is not None:
            x, y, w, h = (float(v) for v in meta["bbox"][:4])
            distance = np.abs(boxes - np.array([x, y, x + w, y + h])).sum(1)
            track = int(ids[int(np.argmin(distance))])
        meta["track_id"] = track
        return sample


class _People:
    """Detect and track the people of each frame chunk, in frame order (the dataset side)."""

    def __init__(self, task: Any, detector: PersonDetector | None, tracker: PersonTracker,
                 plan: list[str], padding: float, options: Mapping[str, Any]) -> None:
        self.task, self.detector, self.tracker = task, detector, tracker
        self.plan, self.padding, self.options = plan, padding, options
        self.people = 0
        self.track_ids: set[int] = set()

    def __call__(self, files: list[Path]) -> Dataset[dict[str, Any]]:
        names = [str(f) for f in files]
        self.plan.extend(names)
        if self.detector is None:  # no detector: each whole frame is one person (as before)
            self.people += len(files)
            self.track_ids.add(WHOLE_IMAGE_TRACK)
            return TrackedSamples(self.task.predict_dataset(files, **self.options), {})
        found: Sequence[Detections] = self.detector.detect([read_rgb(f) for f in files], names)
        detections: dict[str, Detections] = {}
        tracks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, people in zip(names, found, strict=True):
            kept, ids = self.tracker.update(people)
            detections[name], tracks[name] = kept, (np.asarray(kept.boxes).reshape(-1, 4), ids)
            self.people += len(ids)
            self.track_ids.update(int(i) for i in ids)
        dataset = self.task.predict_dataset(files, detections=detections, padding=self.padding)
        return TrackedSamples(dataset, tracks)


class _Smooth:
    """Smooth each tracked person's per-frame values (the task's ``smoothed_keys``: pose
    keypoints) and optionally its box, for a finished frame (the writer side)."""

    def __init__(self, values: dict[str, OneEuroSmoother], boxes: OneEuroSmoother | None,
                 fps: float) -> None:
        self.values, self.boxes, self.fps = values, boxes, fps

    def __call__(self, items: list[dict[str, Any]], frame: int) -> list[dict[str, Any]]:
        t = frame / self.fps
        for item in items:
            track = int(item["meta"].get("track_id", WHOLE_IMAGE_TRACK))
            for key, smoother in self.values.items():
                item[key] = smoother(track, t, np.asarray(item[key]))
            if self.boxes is not None and item["meta"].get("bbox") is not None:
                item["meta"]["bbox"] = self.boxes(track, t, np.asarray(
                    item["meta"]["bbox"], dtype=np.float64)).tolist()
        return items


def _node(cfg: DictConfig | Mapping[str, Any], key: str) -> dict[str, Any]:
    """A config node as a plain dict (``{}`` when absent or null)."""
    value = cfg.get(key)
    if value is None:
        return {}
    if isinstance(value, DictConfig):
        return OmegaConf.to_container(value, resolve=True)  # type: ignore[return-value]
    return dict(value)


def predict_video(task: Any, video: Path, out_dir: Path, cfg: DictConfig,
                  detector: PersonDetector | None = None) -> dict[str, Any]:
    """Stream ``video`` through ``task``: ``<stem>_frames/`` files and ``<stem>_overlay.mp4``.

    Args:
        task: The task to predict with (in eval mode).
        video: The video file (already checked with ``probe_video``).
        out_dir: Folder the outputs go to.
        cfg: Predict's config: ``video_stride``, ``max_frames``, ``batch_size``,
            ``accelerator``, ``mask_dir``, ``tracker``, ``smoothing``, ``detector.padding``.
        detector: Finds the people of each frame when the task needs person boxes; ``None``
            uses each whole frame as one person (``track_id`` 0).

    Returns:
        The video's ``summary.json`` entry, plus ``"results"``: its COCO records (pose: one
        per person per frame, with ``frame``, ``track_id`` and ``image_id`` = the frame index).
    """
    import lightning as L

    from sapiens_kit.callbacks.video_writer import VideoWriterCallback
    from sapiens_kit.data.collate import collate
    from sapiens_kit.data.video import VideoFrames, VideoSink, probe_video

    info = probe_video(video)
    stride = int(cfg.get("video_stride") or 1)
    fps = info.fps / stride
    sink = VideoSink(out_dir / f"{video.stem}_overlay.mp4", fps)
    frames_dir = out_dir / f"{video.stem}_frames"
    options = {"mask_dir": cfg.mask_dir} if cfg.get("mask_dir") else {}
    people = bool(getattr(task, "needs_person_boxes", False))
    smoothing = _node(cfg, "smoothing")
    plan: list[str] = []
    finder = None
    on_frame = None
    chunk = 1
    if people:
        padding = _node(cfg, "detector").get("padding") or DEFAULT_PADDING
        finder = _People(task, detector, PersonTracker.from_config(fps, _node(cfg, "tracker")),
                         plan, float(padding), options)
        # one filter state per smoothed value of the task (None: smoothing=none)
        built = {key: build_smoother(smoothing) for key in getattr(task, "smoothed_keys", ())}
        values = {key: smoother for key, smoother in built.items() if smoother is not None}
        if values:
            boxes = build_smoother(smoothing) if smoothing.get("boxes") else None
            on_frame = _Smooth(values, boxes, info.fps)
        chunk = int(getattr(detector, "batch_size", 1) or 1) if detector is not None else 1

    def make_dataset(files: list[Path]) -> Any:
        if finder is not None:
            return finder(files)
        plan.extend(str(f) for f in files)
        return task.predict_dataset(files, **options)

    with tempfile.TemporaryDirectory(prefix="sapiens_kit_frames_") as scratch:
        frames = VideoFrames(video, Path(scratch), make_dataset, stride, cfg.get("max_frames"),
                             chunk=chunk)
        loader = DataLoader(frames, batch_size=cfg.batch_size, num_workers=0,
                            collate_fn=collate)
        writer = VideoWriterCallback(task, frames_dir, sink, plan=plan, on_frame=on_frame)
        trainer = L.Trainer(accelerator=cfg.accelerator, devices=1, logger=False,
                            callbacks=[writer])
        try:
            with warnings.catch_warnings():  # frames stream in: there are no batch indices
                warnings.filterwarnings("ignore", message=".*infer the batch indices")
                trainer.predict(task, dataloaders=loader, return_predictions=False)
            writer.finish()  # frames after the last prediction (none found in them)
        finally:
            sink.close()
    if info.frame_count and frames.decoded < info.frame_count and cfg.get("max_frames") is None:
        log.warning("%s: decoded %d of the %d frames the container announces (truncated or "
                    "damaged file?)", video, frames.decoded, info.frame_count)
    log.info("%s: %d frames -> %s (%s)", video, sink.frames, sink.path, sink.codec)
    entry: dict[str, Any] = {
        "input": str(video), "video": sink.path.name, "frames_dir": frames_dir.name,
        "frames": sink.frames, "decoded": frames.decoded, "fps": sink.fps, "codec": sink.codec,
        "files": writer.files,
    }
    if finder is not None:
        entry.update(people=finder.people, tracks=len(finder.track_ids),
                     smoothing=smoothing.get("name", "none"))
    for record in writer.records:
        record["video"] = str(video)
    entry["results"] = writer.records
    return entry


__all__ = ["TrackedSamples", "predict_video"]
