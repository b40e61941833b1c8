"""The prediction writer that streams a video's frames through a task (``predict input=<video>``).

Kept out of :mod:`sapiens_kit.predict` so that the app imports Lightning only when it predicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter

from sapiens_kit.data.io import read_rgb
from sapiens_kit.data.video import VideoSink


class VideoWriterCallback(BasePredictionWriter):
    """Per predicted batch of video frames: the task's per-frame files, one annotated frame
    appended to the video, and the scratch frame file deleted."""

    def __init__(self, task: Any, frames_dir: Path, sink: VideoSink) -> None:
        super().__init__(write_interval="batch")
        self.task, self.frames_dir, self.sink = task, frames_dir, sink
        self.files = 0

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           prediction: Any, batch_indices: Any, batch: Any, batch_idx: int,
                           dataloader_idx: int = 0) -> None:
        """Save, draw and append the frames of one batch, in frame order."""
        written = self.task.save_predictions([prediction], self.frames_dir)
        self.files += len(written)
        frames: dict[str, list[dict[str, Any]]] = {}
        for item in prediction:
            frames.setdefault(item["meta"]["path"], []).append(item)
        for path, items in frames.items():
            self.sink.write(self.task.draw(read_rgb(path), items))
            Path(path).unlink(missing_ok=True)


__all__ = ["VideoWriterCallback"]
