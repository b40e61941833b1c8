"""Normal loss against plain NumPy formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sapiens_kit.losses.normal import NormalLoss
from sapiens_kit.metrics.normal import NormalMetrics
from tests.helpers import unit as _unit


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
