"""One Euro smoothing of tracked keypoints: less jitter, real moves kept."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from sapiens_kit.errors import UserError
from sapiens_kit.inference.smoothing import OneEuroSmoother, build_smoother
from sapiens_kit.utils.config import CONFIG_DIR

FPS = 25.0


def one_euro_defaults() -> OneEuroSmoother:
    smoother = build_smoother(OmegaConf.load(f"{CONFIG_DIR}/smoothing/one_euro.yaml"))
    assert isinstance(smoother, OneEuroSmoother)
    return smoother


def noisy_track(n: int = 120, step_at: int = 60, jump: float = 60.0,
                noise: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """``(truth, noisy)``: 17 keypoints (x, y) standing still, all jumping by ``jump`` px at
    frame ``step_at``, with Gaussian jitter of ``noise`` px."""
    rng = np.random.default_rng(0)
    base = rng.uniform(50, 300, (17, 2))
    truth = np.stack([base + (jump if i >= step_at else 0.0) for i in range(n)])
    return truth, truth + rng.normal(0, noise, truth.shape)


def run(smoother: OneEuroSmoother, values: np.ndarray, track_id: int = 1) -> np.ndarray:
    return np.stack([smoother(track_id, i / FPS, v) for i, v in enumerate(values)])


def jitter(values: np.ndarray) -> float:
    """Standard deviation of the frame-to-frame differences."""
    return float(np.std(np.diff(values, axis=0)))


def test_jitter_goes_down_and_a_step_is_kept() -> None:
    truth, noisy = noisy_track()
    out = run(one_euro_defaults(), noisy)
    # At rest (before and well after the jump), frame-to-frame jitter shrinks at least 3x
    # (about 5x measured with the defaults).
    for rest in (slice(5, 60), slice(70, 120)):
        assert jitter(out[rest]) < jitter(noisy[rest]) / 3
    # The 60 px jump is kept: within 3 frames every keypoint is within 5 px of its new
    # place, and stays there.
    error = np.abs(out - truth).max(axis=(1, 2))
    assert (error[63:] < 5).all()
    assert error[60] > 20  # (the filter does lag: the first frame of the jump is not there yet)
    # The smoothed track is closer to the truth than the raw one.
    assert np.abs(out - truth)[5:60].mean() < np.abs(noisy - truth)[5:60].mean() / 2


def test_tracks_are_smoothed_apart_and_first_values_pass_unchanged() -> None:
    smoother = OneEuroSmoother(min_cutoff=1.0, beta=0.0)
    a, b = np.array([[10.0, 20.0]]), np.array([[500.0, 400.0]])
    assert np.array_equal(smoother(1, 0.0, a), a)
    assert np.array_equal(smoother(2, 0.0, b), b)
    moved = smoother(1, 0.04, a + 10)
    assert 10 < moved[0, 0] < 20  # pulled towards the previous value of track 1 only
    assert np.allclose(smoother(2, 0.04, b), b)
    assert np.array_equal(smoother(1, 0.04, a + 50), moved)  # same time again: no new sample
    smoother.forget([1])
    assert len(smoother) == 1 and np.array_equal(smoother(1, 0.08, a), a)


def test_missing_values_keep_the_last_state() -> None:
    smoother = OneEuroSmoother(min_cutoff=1.0, beta=0.02)
    smoother(1, 0.0, np.array([10.0, 10.0]))
    out = smoother(1, 0.04, np.array([np.nan, 12.0]))
    assert out[0] == 10.0 and 10 < out[1] < 12


def test_config_group() -> None:
    assert build_smoother(OmegaConf.load(f"{CONFIG_DIR}/smoothing/none.yaml")) is None
    assert build_smoother(None) is None
    with pytest.raises(UserError, match="smoothing=kalman"):
        build_smoother({"name": "kalman"})
    with pytest.raises(UserError, match="min_cutoff"):
        build_smoother({"name": "one_euro", "min_cutoff": 0, "beta": 0.1})
