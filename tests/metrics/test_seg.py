"""Segmentation metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from sapiens_kit.metrics import SegmentationMetrics


def test_metrics_match_hand_computation() -> None:
    metric = SegmentationMetrics(num_classes=3, ignore_index=255)
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 0]])
    preds = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    metric.update(preds, target)
    out = metric.compute()
    # Valid pixels 7 (one ignored). Class 0: gt 3, pred 3, tp 2 -> IoU 2/4.
    # Class 1: gt 2, pred 3, tp 2 -> IoU 2/3. Class 2: gt 2, pred 1, tp 1 -> IoU 1/2.
    assert out["IoU"].tolist() == pytest.approx([0.5, 2 / 3, 0.5])
    assert out["mIoU"].item() == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert out["Acc"].tolist() == pytest.approx([2 / 3, 1.0, 0.5])
    assert out["aAcc"].item() == pytest.approx(5 / 7)


def test_absent_classes_are_left_out_of_the_mean_and_updates_accumulate() -> None:
    metric = SegmentationMetrics(num_classes=4)
    metric.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    metric.update(torch.tensor([0, 0]), torch.tensor([0, 1]))
    out = metric.compute()
    assert math.isnan(out["IoU"][3]) and math.isnan(out["IoU"][2])
    # Class 0: tp 2, gt 2, pred 3 -> 2/3; class 1: tp 1, gt 2, pred 1 -> 1/2.
    assert out["mIoU"].item() == pytest.approx((2 / 3 + 0.5) / 2)


def test_out_of_range_targets_raise() -> None:
    with pytest.raises(ValueError, match="outside"):
        SegmentationMetrics(num_classes=2).update(torch.tensor([0]), torch.tensor([5]))
