"""Depth target, SiLog loss, alignment and metrics against plain NumPy formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sapiens_kit.losses.depth import DepthLoss, depth_target, gradient_matching_loss, silog_loss
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


def test_depth_target_matches_official_normalisation() -> None:
    depth = torch.tensor([[[[2.0, 4.0], [3.0, 9.0]]]])
    valid = torch.tensor([[[True, True], [True, False]]])
    target = depth_target(depth, valid)
    torch.testing.assert_close(target, torch.tensor([[[[0.0, 1.0], [0.5, -1.0]]]]))
    metric = depth_target(depth, valid, "metric")
    torch.testing.assert_close(metric, torch.tensor([[[[2.0, 4.0], [3.0, -1.0]]]]))


def test_silog_equals_numpy() -> None:
    rng = np.random.default_rng(2)
    pred = rng.uniform(-0.2, 1.2, (2, 1, 6, 5))
    target = rng.uniform(0, 1, (2, 1, 6, 5))
    target[:, :, 0] = -1.0  # background
    target[0, 0, 1, 0] = 0.0  # foreground minimum: excluded (target > eps)
    target[1, 0, 1, 1] = np.inf
    loss, has = silog_loss(torch.from_numpy(pred), torch.from_numpy(target), lam=0.5)
    for i in range(2):
        t, p = target[i].ravel(), pred[i].ravel().astype(np.float32).astype(np.float64)
        keep = (t > 1e-6) & np.isfinite(t)
        d = np.log(t[keep]) - np.log(np.maximum(p[keep], 1e-6))
        expected = np.sqrt(np.mean(d**2) - 0.5 * np.mean(d) ** 2)
        assert float(loss[i]) == pytest.approx(expected, rel=1e-5)
    assert has.all()
    total = DepthLoss()(torch.from_numpy(pred).float(), torch.from_numpy(target).float())
    assert float(total) == pytest.approx(float(loss.mean()), rel=1e-6)


def test_loss_is_finite_and_differentiable_without_pixels() -> None:
    pred = torch.rand(2, 1, 4, 4, requires_grad=True)
    target = torch.full((2, 1, 8, 8), -1.0)
    loss = DepthLoss(grad_weight=1.0)(pred, target)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.isfinite(pred.grad).all()
    # A perfect prediction: zero loss with finite gradients.
    t = torch.rand(1, 1, 4, 4) + 0.5
    p = t.clone().requires_grad_(True)
    DepthLoss()(p, t).backward()
    assert torch.isfinite(p.grad).all()


def test_gradient_matching_zero_for_shifted_prediction() -> None:
    target = torch.rand(1, 1, 16, 16)
    valid = torch.ones(1, 16, 16, dtype=torch.bool)
    assert float(gradient_matching_loss(target + 0.3, target, valid)) == pytest.approx(0, abs=1e-6)
    assert float(gradient_matching_loss(target * 2, target, valid)) > 0
