"""Temporal smoothing of tracked keypoints in a video (``smoothing=one_euro``).

A pose model predicts each frame on its own, so a person standing still jitters by a pixel or
two from frame to frame. The One Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a
low-pass filter whose cut-off frequency rises with the signal's speed: slow motion is smoothed
hard (little jitter), fast motion passes with little lag (a real jump is kept). It needs no
look-ahead, so frames are written as they come.

Two knobs (``conf/smoothing/one_euro.yaml``):

- ``min_cutoff`` (Hz): the cut-off at rest. Lower: less jitter, more lag on slow motion.
- ``beta`` (per pixel/second): how fast the cut-off rises with speed. Higher: less lag on fast
  motion, more jitter left in it.

``d_cutoff`` (Hz) filters the speed estimate itself; the paper's 1 Hz rarely needs a change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Weight of the new sample in an exponential filter with this cut-off (Hz) at step ``dt``."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


@dataclass
class _State:
    t: float
    value: np.ndarray  # last filtered value
    speed: np.ndarray  # last filtered derivative (units per second)


class OneEuroSmoother:
    """One Euro filters, one per track id and per coordinate.

    Call it once per frame and track with the track's raw values (any shape, e.g. ``(K, 2)``
    keypoints); it returns the filtered values of the same shape. The first call of a track
    returns the values unchanged. A track that comes back after a gap continues from its last
    state: the longer the gap, the more weight the new values get.

    Args:
        min_cutoff: Cut-off frequency at rest (Hz).
        beta: Speed coefficient: cut-off = ``min_cutoff + beta * |speed|`` (speed in units/s).
        d_cutoff: Cut-off frequency of the speed estimate (Hz).
    """

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"one_euro smoothing needs min_cutoff > 0, d_cutoff > 0 and "
                             f"beta >= 0 (got {min_cutoff}, {d_cutoff}, {beta})")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self._tracks: dict[int, _State] = {}

    def __call__(self, track_id: int, t: float, values: np.ndarray) -> np.ndarray:
        """The filtered ``values`` of track ``track_id`` at time ``t`` (seconds)."""
        x = np.asarray(values, dtype=np.float64)
        state = self._tracks.get(track_id)
        if state is None or state.value.shape != x.shape:
            self._tracks[track_id] = _State(t, x.copy(), np.zeros_like(x))
            return x.astype(np.asarray(values).dtype, copy=True)
        dt = t - state.t
        if dt <= 0:  # same (or an earlier) time again: nothing new to filter
            return state.value.astype(np.asarray(values).dtype, copy=True)
        # Missing values (NaN) keep the track's last state rather than poisoning it.
        x = np.where(np.isfinite(x), x, state.value)
        speed = (x - state.value) / dt
        speed = state.speed + _alpha(self.d_cutoff, dt) * (speed - state.speed)
        cutoff = self.min_cutoff + self.beta * np.abs(speed)
        value = state.value + _alpha(cutoff, dt) * (x - state.value)
        self._tracks[track_id] = _State(t, value, speed)
        return value.astype(np.asarray(values).dtype, copy=False)

    def forget(self, track_ids: Iterable[int]) -> None:
        """Drop the state of tracks that have ended."""
        for track_id in track_ids:
            self._tracks.pop(track_id, None)

    def __len__(self) -> int:
        return len(self._tracks)


#: The ``smoothing`` config group's options.
SMOOTHERS = ("none", "one_euro")


def build_smoother(cfg: Mapping[str, Any] | None) -> OneEuroSmoother | None:
    """The smoother a ``smoothing`` config node selects (``None`` for ``none`` or no node)."""
    from sapiens_kit.errors import UserError

    if not cfg or cfg.get("name") in (None, "none"):
        return None
    if cfg.get("name") != "one_euro":
        raise UserError(f"smoothing={cfg.get('name')}: unknown smoothing "
                        f"(choose one of {', '.join(SMOOTHERS)})")
    try:
        return OneEuroSmoother(float(cfg["min_cutoff"]), float(cfg["beta"]),
                               float(cfg.get("d_cutoff") or 1.0))
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"smoothing=one_euro: {err} (set smoothing.min_cutoff > 0 and "
                        "smoothing.beta >= 0)") from None


__all__ = ["SMOOTHERS", "OneEuroSmoother", "build_smoother"]
