"""Depth target, SiLog and gradient-matching losses against plain NumPy formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sapiens_kit.losses.depth import DepthLoss, depth_target, gradient_matching_loss, silog_loss


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
