"""Normal loss and angular metrics against plain NumPy formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sapiens_kit.losses.normal import NormalLoss
from sapiens_kit.metrics.normal import NormalMetrics, angular_error


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _np_errors(pred: np.ndarray, target: np.ndarray, valid: np.ndarray) -> np.ndarray:
    cos = np.clip((_unit(pred) * _unit(target)).sum(1), -1, 1)
    return np.degrees(np.arccos(cos))[valid]


def test_metrics_equal_numpy() -> None:
    rng = np.random.default_rng(0)
    target = _unit(rng.normal(size=(3, 3, 10, 8)))
    pred = target + rng.normal(scale=0.4, size=target.shape)
    valid = rng.random((3, 10, 8)) > 0.25
    metric = NormalMetrics()
    for i in range(3):  # accumulate over several updates
        metric.update(torch.from_numpy(pred[i : i + 1]), torch.from_numpy(target[i : i + 1]),
                      torch.from_numpy(valid[i : i + 1]))
    result = metric.compute()
    err = _np_errors(pred, target, valid)
    assert float(result["mean_angular_error"]) == pytest.approx(err.mean(), rel=1e-10)
    assert float(result["median_angular_error"]) == pytest.approx(np.median(err), abs=0.005)
    for key, t in (("within_11_25", 11.25), ("within_22_5", 22.5), ("within_30", 30.0)):
        assert float(result[key]) == pytest.approx(100 * np.mean(err < t), rel=1e-12)


def test_hand_checkable_angles() -> None:
    target = torch.tensor([[0.0, 0.0, 1.0]] * 4).T.reshape(1, 3, 2, 2)
    c, s = np.cos(np.radians(10)), np.sin(np.radians(10))
    pred = torch.tensor([[0, 0, 5.0], [s, 0, c], [0, 1.0, 0], [0, 0, -1.0]]).T.reshape(1, 3, 2, 2)
    err = angular_error(pred, target)[0].flatten()
    torch.testing.assert_close(err, torch.tensor([0, 10, 90, 180], dtype=torch.float64),
                               atol=1e-6, rtol=0)
    metric = NormalMetrics()
    metric.update(pred, target, torch.ones(1, 2, 2, dtype=torch.bool))
    result = metric.compute()
    assert float(result["mean_angular_error"]) == pytest.approx(70.0)
    assert float(result["median_angular_error"]) == pytest.approx(50.0)
    assert float(result["within_11_25"]) == 50.0 and float(result["within_30"]) == 50.0


def test_loss_equals_numpy_official_formula() -> None:
    rng = np.random.default_rng(1)
    target = _unit(rng.normal(size=(2, 3, 6, 5))).astype(np.float32)
    pred = rng.normal(size=(2, 3, 6, 5)).astype(np.float32) * 2
    valid = rng.random((2, 6, 5)) > 0.4
    loss = NormalLoss()(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(valid))
    cos = (_unit(pred) * target).sum(1)[valid]
    l1 = np.abs(pred - target).sum(1)[valid]
    expected = (1 - cos).sum() / valid.sum() + l1.sum() / valid.sum()
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # The official rule without an explicit mask: background written as -1000.
    official = np.where(valid[:, None], target, -1000.0).astype(np.float32)
    loss2 = NormalLoss()(torch.from_numpy(pred), torch.from_numpy(official))
    assert float(loss2) == pytest.approx(expected, rel=1e-5)


def test_loss_upsamples_and_survives_empty_masks() -> None:
    pred = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.zeros(1, 3, 8, 8)
    target[:, 2] = 1
    loss = NormalLoss(grad_weight=0.5)(pred, target, torch.zeros(1, 8, 8, dtype=torch.bool))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.isfinite(pred.grad).all()
    assert NormalMetrics().compute()["mean_angular_error"].isnan()
