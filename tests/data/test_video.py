"""The annotated video plays in a browser: H.264, yuv420p, frame rate and size kept."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from sapiens_kit.data import video as video_module
from sapiens_kit.data.video import VideoSink


def frames(n: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``n`` RGB frames of a white bar moving right."""
    out = []
    for i in range(n):
        frame = np.full((*size, 3), 40, np.uint8)
        frame[:, 3 * i : 3 * i + 8] = 255
        out.append(frame)
    return out


def decode(path: Path) -> tuple[str, str, Fraction, list[np.ndarray]]:
    """``(codec, pixel format, frame rate, RGB frames)`` read back with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return (stream.codec_context.name, stream.codec_context.pix_fmt, stream.average_rate,
                decoded)


@pytest.mark.parametrize(("fps", "rate"), [(25.0, Fraction(25)), (12.5, Fraction(25, 2)),
                                           (30000 / 1001, Fraction(30000, 1001))])
def test_h264_decodes_with_frame_count_rate_and_size_kept(tmp_path: Path, fps: float,
                                                          rate: Fraction) -> None:
    sink = VideoSink(tmp_path / "clip_overlay.mp4", fps)
    written = frames(12, (48, 64))
    for frame in written:
        sink.write(frame)
    sink.close()
    codec, pix_fmt, average_rate, decoded = decode(sink.path)
    assert (codec, pix_fmt, sink.codec) == ("h264", "yuv420p", "h264")
    assert average_rate == rate
    assert len(decoded) == sink.frames == 12
    assert decoded[0].shape == (48, 64, 3)
    # Close to what was written (lossy, but not another picture).
    assert np.abs(decoded[5].astype(int) - written[5]).mean() < 6


def test_odd_sizes_lose_one_pixel_and_other_sizes_are_resized(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path / "odd.mp4", 10)
    sink.write(frames(1, (49, 65))[0])
    sink.write(np.zeros((100, 130, 3), np.uint8))  # another size: resized to the first one
    sink.close()
    _, _, _, decoded = decode(sink.path)
    assert sink.size == (64, 48) and [d.shape for d in decoded] == [(48, 64, 3)] * 2


def test_falls_back_to_mp4v_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(video_module, "H264_ENCODERS", ("no_such_encoder",))
    sink = VideoSink(tmp_path / "clip.mp4", 10)
    with caplog.at_level(logging.WARNING):
        for frame in frames(4, (48, 64)):
            sink.write(frame)
        sink.close()
    assert sink.codec == "mp4v" and "cannot write H.264" in caplog.text
    cap = cv2.VideoCapture(str(sink.path))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    assert count == 4
