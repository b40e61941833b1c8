"""Video input and output for ``predict``: frames in with OpenCV's ``VideoCapture``, annotated
frames out as browser-playable H.264 through PyAV (whose wheels ship FFmpeg with libx264), or
OpenCV's ``mp4v`` when no H.264 encoder can be opened."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset, IterableDataset

from sapiens_kit.data.io import DataFileError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
#: Fallback codec of the annotated video (``.mp4``) when H.264 cannot be written: OpenCV's pip
#: wheels ship no H.264 encoder, and browsers do not play ``mp4v``.
FOURCC = "mp4v"
#: PyAV encoders tried in turn for H.264 (FFmpeg's libx264 first, then whatever else FFmpeg
#: calls ``h264``/OpenH264).
H264_ENCODERS = ("libx264", "h264", "libopenh264")
#: libx264 settings: visually lossless for overlays, fast on a CPU, and playable everywhere
#: (``yuv420p``, the moov atom at the front so browsers start playing before the end arrives).
X264_OPTIONS = {"crf": "20", "preset": "veryfast"}


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
        make_dataset: ``[frame files] -> dataset`` (the task's ``predict_dataset``), called once
            per ``chunk`` of kept frames, in frame order (so it may detect and track people).
        stride: Keep every ``stride``-th frame.
        max_frames: Stop after this many kept frames (``None``: all).
        chunk: Kept frames handed to ``make_dataset`` at a time (a detector's batch).
    """

    def __init__(self, path: str | Path, scratch: Path,
                 make_dataset: Callable[[list[Path]], Dataset[dict[str, Any]]],
                 stride: int = 1, max_frames: int | None = None, chunk: int = 1) -> None:
        if stride < 1:
            raise ValueError(f"video stride must be >= 1, got {stride}")
        self.path, self.scratch = Path(path), Path(scratch)
        self.make_dataset, self.stride, self.max_frames = make_dataset, stride, max_frames
        self.chunk = max(1, int(chunk))
        self.decoded = 0
        self.kept = 0

    def _frames(self) -> Iterator[tuple[int, Path]]:
        """``(frame index, scratch file)`` of each kept frame."""
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
                yield index, file
        finally:
            cap.release()

    def _samples(self, batch: list[tuple[int, Path]]) -> Iterator[dict[str, Any]]:
        frames = {str(file): index for index, file in batch}
        dataset = self.make_dataset([file for _, file in batch])
        for i in range(len(dataset)):  # type: ignore[arg-type]
            sample = dataset[i]
            sample["meta"].update(frame=frames[str(sample["meta"]["path"])],
                                  video=str(self.path))
            yield sample

    def __iter__(self) -> Iterator[dict[str, Any]]:
        batch: list[tuple[int, Path]] = []
        for item in self._frames():
            batch.append(item)
            if len(batch) == self.chunk:
                yield from self._samples(batch)
                batch = []
        if batch:
            yield from self._samples(batch)


def _fps_fraction(fps: float) -> Fraction:
    """The frame rate as the exact fraction containers store (29.97 -> 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


class VideoSink:
    """Write RGB frames to a browser-playable ``.mp4``: H.264, ``yuv420p``, even sizes, the
    given frame rate.

    The encoder opens at the first frame's size (an odd width or height loses its last pixel
    column or row, which ``yuv420p`` requires) and later frames of another size are resized to
    it. H.264 comes from PyAV; when no H.264 encoder opens, OpenCV writes ``mp4v`` instead
    with a warning (that file plays in desktop players, not in most browsers). ``codec`` says
    which one was used (``h264`` or ``mp4v``).
    """

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = Path(path), fps
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.codec: str | None = None
        self._writer: cv2.VideoWriter | None = None
        self._container: Any = None
        self._stream: Any = None

    # ------------------------------------------------------------------ opening
    def _open_h264(self, first: np.ndarray) -> str | None:
        """Open a PyAV H.264 writer and encode ``first`` with it: ``None`` when that worked,
        else why not (and nothing is left on disk)."""
        try:
            import av
        except ImportError:
            return "PyAV is not installed (pip install av)"
        assert self.size is not None
        problems = []
        for name in H264_ENCODERS:
            container = None
            try:
                av.Codec(name, "w")
                container = av.open(str(self.path), mode="w", format="mp4",
                                    options={"movflags": "+faststart"})
                stream: Any = container.add_stream(name, rate=_fps_fraction(self.fps))
                stream.width, stream.height = self.size
                stream.pix_fmt = "yuv420p"
                if name == "libx264":
                    stream.options = dict(X264_OPTIONS)
                self._container, self._stream = container, stream
                self._encode(first)
                self.codec = "h264"
                return None
            except Exception as err:  # any encoder failure: try the next, then fall back
                problems.append(f"{name}: {type(err).__name__}: {err}")
                if container is not None:
                    with suppress(Exception):  # already failing; the file goes next
                        container.close()
                self._container = self._stream = None
                self.path.unlink(missing_ok=True)
        return "; ".join(problems) or "no H.264 encoder"

    def _open_mp4v(self) -> None:
        assert self.size is not None
        fourcc = cv2.VideoWriter.fourcc(*FOURCC)
        self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
        if not self._writer.isOpened():
            raise DataFileError(f"{self.path}: cannot write the video here (neither H.264 "
                                f"through PyAV nor OpenCV's {FOURCC})")
        self.codec = FOURCC

    # ------------------------------------------------------------------ writing
    def _fit(self, rgb: np.ndarray) -> np.ndarray:
        assert self.size is not None
        width, height = self.size
        if rgb.shape[1] in (width, width + 1) and rgb.shape[0] in (height, height + 1):
            return np.ascontiguousarray(rgb[:height, :width])  # odd sizes: drop the last pixel
        return cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)

    def _encode(self, rgb: np.ndarray | None) -> None:
        import av

        if rgb is None:
            packets = self._stream.encode(None)  # flush the encoder
        else:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = self.frames
            frame.time_base = 1 / _fps_fraction(self.fps)
            packets = self._stream.encode(frame)
        self._container.mux(packets)

    def write(self, rgb: np.ndarray) -> None:
        """Append one RGB uint8 frame."""
        if self.codec is None:
            height, width = rgb.shape[:2]
            self.size = (width - width % 2, height - height % 2)  # yuv420p wants even sizes
            rgb = self._fit(rgb)
            problem = self._open_h264(rgb)
            if problem is None:
                self.frames += 1
                return
            log.warning("%s: cannot write H.264 (%s); writing OpenCV %s instead, which most "
                        "browsers do not play", self.path, problem, FOURCC)
            self._open_mp4v()
        rgb = self._fit(rgb)
        if self._writer is not None:
            self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        else:
            self._encode(rgb)
        self.frames += 1

    def close(self) -> None:
        """Finish the file."""
        if self._container is not None:
            try:
                self._encode(None)
            finally:
                self._container.close()
                self._container = self._stream = None
        if self._writer is not None:
            self._writer.release()
            self._writer = None


__all__ = ["VIDEO_SUFFIXES", "VideoFrames", "VideoInfo", "VideoSink", "probe_video"]
