"""Normal angular metrics against plain NumPy formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sapiens_kit.metrics.normal import NormalMetrics, angular_error
from tests.helpers import unit as _unit


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
