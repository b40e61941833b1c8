"""Depth alignment and metrics against plain NumPy formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sapiens_kit.metrics.depth import DEPTH_METRICS, DepthMetrics, align_depth


def _np_align(p: np.ndarray, g: np.ndarray, mode: str) -> np.ndarray:
    if mode == "none":
        return p
    if mode == "scale":
        return p * (p @ g) / (p @ p)
    a = np.stack([p, np.ones_like(p)], 1)
    (s, t), *_ = np.linalg.lstsq(a, g, rcond=None)
    return s * p + t


def _np_metrics(p: np.ndarray, g: np.ndarray) -> dict[str, float]:
    p = np.maximum(p, 1e-6)
    ratio = np.maximum(p / g, g / p)
    return {
        "abs_rel": np.mean(np.abs(p - g) / g),
        "sq_rel": np.mean((p - g) ** 2 / g),
        "rmse": np.sqrt(np.mean((p - g) ** 2)),
        "rmse_log": np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2)),
        "delta1": np.mean(ratio < 1.25),
        "delta2": np.mean(ratio < 1.25**2),
        "delta3": np.mean(ratio < 1.25**3),
    }


def test_alignment_recovers_known_scale_and_shift() -> None:
    rng = np.random.default_rng(0)
    g = torch.from_numpy(rng.uniform(1, 5, 500))
    pred = (g - 0.7) / 2.5  # g = 2.5 * pred + 0.7
    aligned, scale, shift = align_depth(pred.float(), g, "scale_shift")
    assert scale == pytest.approx(2.5, abs=1e-5) and shift == pytest.approx(0.7, abs=1e-5)
    torch.testing.assert_close(aligned, g, atol=1e-5, rtol=0)
    aligned, scale, shift = align_depth(g / 3.0, g, "scale")
    assert scale == pytest.approx(3.0) and shift == 0.0
    torch.testing.assert_close(aligned, g)
    _, scale, shift = align_depth(torch.ones(10), g[:10], "scale_shift")
    assert scale == 0.0 and shift == pytest.approx(float(g[:10].mean()))


@pytest.mark.parametrize("mode", ["scale_shift", "scale", "none"])
def test_metrics_equal_numpy(mode: str) -> None:
    rng = np.random.default_rng(1)
    preds = rng.uniform(0.1, 4, (3, 1, 9, 7))
    target = rng.uniform(0.5, 5, (3, 1, 9, 7))
    valid = rng.random((3, 9, 7)) > 0.3
    target[0, 0, 0, 0] = np.nan  # never counted, even if marked valid
    valid[0, 0, 0] = True
    valid[2] = False  # an image without valid pixels does not count
    metric = DepthMetrics(mode)
    metric.update(torch.from_numpy(preds[:2]).float(), torch.from_numpy(target[:2]),
                  torch.from_numpy(valid[:2]))
    metric.update(torch.from_numpy(preds[2:]).float(), torch.from_numpy(target[2:]),
                  torch.from_numpy(valid[2:]))
    result = metric.compute()
    per_image = []
    for i in range(2):
        keep = valid[i] & np.isfinite(target[i, 0])
        p = preds[i, 0][keep].astype(np.float32).astype(np.float64)
        g = target[i, 0][keep]
        per_image.append(_np_metrics(_np_align(p, g, mode), g))
    for name in DEPTH_METRICS:
        expected = np.mean([m[name] for m in per_image])
        assert float(result[name]) == pytest.approx(expected, rel=1e-9, abs=1e-12), name


def test_perfect_prediction_after_alignment() -> None:
    g = torch.rand(2, 1, 8, 6) * 3 + 1
    metric = DepthMetrics("scale_shift")
    metric.update(-4 * g + 10, g, torch.ones(2, 8, 6, dtype=torch.bool))
    result = metric.compute()
    assert float(result["rmse"]) < 1e-5 and float(result["delta1"]) == 1.0
