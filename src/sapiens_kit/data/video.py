"""Video input and output for ``predict``: frames in with OpenCV's ``VideoCapture``, annotated
frames out with ``VideoWriter``."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset, IterableDataset

from sapiens_kit.data.io import DataFileError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
#: Codec of the annotated video (``.mp4``). OpenCV's pip wheels ship no H.264 encoder.
FOURCC = "mp4v"


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video (``frame_count`` may be an estimate)."""

    path: Path
    fps: float
    frame_count: int
    width: int
    height: int


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence FFmpeg's own messages (written straight to fd 2) while probing a file: a bad
    video gets one error line from us instead."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def probe_video(path: str | Path) -> VideoInfo:
    """Open ``path`` and decode its first frame; :class:`DataFileError` when that fails."""
    path = Path(path)
    with _quiet_stderr():
        cap = cv2.VideoCapture(str(path))
        ok, frame = cap.read() if cap.isOpened() else (False, None)
    try:
        if not ok or frame is None:
            raise DataFileError(f"{path}: cannot decode video (not a video file, truncated, or "
                                "a codec this OpenCV build cannot read)")
        fps = cap.get(cv2.CAP_PROP_FPS)
        return VideoInfo(path, fps if fps and np.isfinite(fps) and fps > 0 else 25.0,
                         int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), frame.shape[1],
                         frame.shape[0])
    finally:
        cap.release()


class VideoFrames(IterableDataset[dict[str, Any]]):
    """Decode a video frame by frame and yield the task's prediction samples for each frame.

    The tasks' prediction datasets read image files (and their ``save_predictions`` re-read
    them to draw overlays), so each kept frame is written losslessly to ``scratch`` as
    ``<video stem>_<frame:06d>.bmp`` first; the caller deletes it once the frame is done. Each
    sample's ``meta`` gains ``frame`` (index in the video) and ``video`` (its path).

    Args:
        path: The video file.
        scratch: Folder for the per-frame image files.
        make_dataset: ``[frame file] -> dataset`` (the task's ``predict_dataset``).
        stride: Keep every ``stride``-th frame.
        max_frames: Stop after this many kept frames (``None``: all).
    """

    def __init__(self, path: str | Path, scratch: Path,
                 make_dataset: Callable[[list[Path]], Dataset[dict[str, Any]]],
                 stride: int = 1, max_frames: int | None = None) -> None:
        if stride < 1:
            raise ValueError(f"video stride must be >= 1, got {stride}")
        self.path, self.scratch = Path(path), Path(scratch)
        self.make_dataset, self.stride, self.max_frames = make_dataset, stride, max_frames
        self.decoded = 0
        self.kept = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        cap = cv2.VideoCapture(str(self.path))
        self.decoded = self.kept = 0
        try:
            while self.max_frames is None or self.kept < self.max_frames:
                ok, frame = cap.read()
                if not ok:
                    break
                index = self.decoded
                self.decoded += 1
                if index % self.stride:
                    continue
                file = self.scratch / f"{self.path.stem}_{index:06d}.bmp"
                if not cv2.imwrite(str(file), frame):
                    raise DataFileError(f"{file}: could not write a video frame to scratch space")
                self.kept += 1
                dataset = self.make_dataset([file])
                for i in range(len(dataset)):  # type: ignore[arg-type]
                    sample = dataset[i]
                    sample["meta"].update(frame=index, video=str(self.path))
                    yield sample
        finally:
            cap.release()


class VideoSink:
    """Write RGB frames to an ``.mp4``; the writer opens at the first frame's size and later
    frames of another size are resized to it."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = Path(path), fps
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None

    def write(self, rgb: np.ndarray) -> None:
        """Append one RGB uint8 frame."""
        if self._writer is None:
            height, width = rgb.shape[:2]
            self.size = (width - width % 2, height - height % 2)  # codecs want even sizes
            fourcc = cv2.VideoWriter.fourcc(*FOURCC)
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self._writer.isOpened():
                raise DataFileError(f"{self.path}: OpenCV cannot write {FOURCC} video here")
        assert self.size is not None
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        """Finish the file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None


__all__ = ["VIDEO_SUFFIXES", "VideoFrames", "VideoInfo", "VideoSink", "probe_video"]
