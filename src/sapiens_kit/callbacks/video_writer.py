"""The prediction writer that streams a video's frames through a task (``predict input=<video>``).

Kept out of :mod:`sapiens_kit.predict` so that the app imports Lightning only when it predicts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter

from sapiens_kit.data.io import read_rgb
from sapiens_kit.data.video import VideoSink

#: ``(frame items, frame index) -> frame items``: what happens to a finished frame's
#: predictions before they are written (temporal smoothing of tracked people).
FrameHook = Callable[[list[dict[str, Any]], int], list[dict[str, Any]]]


def label_tracks(image: np.ndarray, items: Sequence[dict[str, Any]]) -> np.ndarray:
    """Write each tracked person's ``#track_id`` above its box (the task drew the rest)."""
    image = np.array(image, copy=True, order="C")
    scale = max(0.3, min(image.shape[:2]) / 800)
    for item in items:
        meta = item["meta"]
        track, box = int(meta.get("track_id", 0)), meta.get("bbox")
        if track <= 0 or box is None:  # 0: a whole frame, not a tracked person
            continue
        x, y = int(box[0]), max(int(box[1]) - 3, int(12 * scale))
        for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):  # outlined: any background
            cv2.putText(image, f"#{track}", (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour,
                        width, cv2.LINE_AA)
    return image


class VideoWriterCallback(BasePredictionWriter):
    """Per finished video frame: the task's per-frame files, one annotated frame appended to
    the video, its COCO records, and the scratch frame file deleted.

    A frame's predictions may span two batches (several people per frame), so items wait
    until a later frame's first item shows that theirs is complete (frames arrive in order),
    or until prediction ends. Frames listed in ``plan`` that produced no prediction at all (no
    person found, with the detector's ``fallback=skip``) are written to the video unannotated,
    so the output keeps every kept frame.

    Args:
        task: The task (its ``save_predictions``, ``draw`` and ``coco_records`` hooks).
        frames_dir: Folder of the per-frame files.
        sink: The annotated video.
        plan: Scratch frame paths (str) in frame order, appended to as frames are decoded;
            ``None``: each batch is written when it arrives (one item per frame).
        on_frame: Applied to each finished frame's items before anything is written.
    """

    def __init__(self, task: Any, frames_dir: Path, sink: VideoSink,
                 plan: Sequence[str] | None = None, on_frame: FrameHook | None = None) -> None:
        super().__init__(write_interval="batch")
        self.task, self.frames_dir, self.sink = task, frames_dir, sink
        self.plan, self.on_frame = plan, on_frame
        self.files = 0
        self.records: list[dict[str, Any]] = []
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._done = 0  # frames of the plan written so far

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           prediction: Any, batch_indices: Any, batch: Any, batch_idx: int,
                           dataloader_idx: int = 0) -> None:
        """Collect one batch's items; write the frames it shows to be complete."""
        for item in prediction:
            self._pending.setdefault(str(item["meta"]["path"]), []).append(item)
        if self.plan is None:
            for path in list(self._pending):
                self._write_frame(path, self._pending.pop(path))
            return
        newest = str(prediction[-1]["meta"]["path"]) if len(prediction) else None
        self._flush(until=newest)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write what is left: the last frame(s), and trailing frames without predictions."""
        self.finish()

    def finish(self) -> None:
        """Write every pending frame (also called by :meth:`on_predict_end`)."""
        if self.plan is None:
            for path in list(self._pending):
                self._write_frame(path, self._pending.pop(path))
        else:
            self._flush(until=None)

    def _flush(self, until: str | None) -> None:
        """Write the planned frames in order, up to (not including) ``until`` (``None``: all)."""
        assert self.plan is not None
        while self._done < len(self.plan):
            path = self.plan[self._done]
            if path == until:
                break
            self._write_frame(path, self._pending.pop(path, []))
            self._done += 1

    def _write_frame(self, path: str, items: list[dict[str, Any]]) -> None:
        image = read_rgb(path)
        if items:
            frame = int(items[0]["meta"].get("frame", self.sink.frames))
            # a frame where nobody was found has one placeholder sample (meta["empty"]): it
            # still gets its (empty) per-frame file, but no record, smoothing or drawing
            people = [item for item in items if not item["meta"].get("empty")]
            if self.on_frame is not None and people:
                people = self.on_frame(people, frame)
            self.files += len(self.task.save_predictions([people or items], self.frames_dir))
            records: list[dict[str, Any]] = getattr(self.task, "coco_records",
                                                    lambda _: [])(people)
            for record, item in zip(records, people, strict=bool(records)):
                meta = item["meta"]
                record.update(image_id=frame, frame=frame)
                if "track_id" in meta:
                    record["track_id"] = int(meta["track_id"])
                self.records.append(record)
            if people:
                image = label_tracks(self.task.draw(image, people), people)
        self.sink.write(np.asarray(image))
        Path(path).unlink(missing_ok=True)


__all__ = ["FrameHook", "VideoWriterCallback", "label_tracks"]
