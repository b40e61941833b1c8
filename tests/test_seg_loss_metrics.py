"""Segmentation loss and metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from sapiens_kit.losses import SegmentationLoss, dice_loss
from sapiens_kit.metrics import SegmentationMetrics


def test_weighted_ce_is_averaged_over_all_pixels_like_the_official_loss() -> None:
    # One image, 2 classes, 1x2 pixels. Logits favour class 0 by ln(3) on both pixels.
    logits = torch.tensor([[[[math.log(3), math.log(3)]], [[0.0, 0.0]]]])
    target = torch.tensor([[[1, 255]]])  # second pixel ignored
    loss = SegmentationLoss(class_weight=[1.0, 2.0])(logits, target)
    # Pixel 1: -log(1/4) * weight 2; pixel 2 ignored -> 0; mean over BOTH pixels.
    assert loss.item() == pytest.approx(2 * math.log(4) / 2)


def test_logits_are_upsampled_to_the_label_size() -> None:
    logits = torch.zeros(1, 3, 2, 2)
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    assert SegmentationLoss()(logits, target).item() == pytest.approx(math.log(3))


def test_dice_is_zero_for_a_perfect_prediction_and_one_minus_overlap_otherwise() -> None:
    target = torch.tensor([[[0, 1]]])
    perfect = torch.tensor([[[[100.0, -100.0]], [[-100.0, 100.0]]]])
    assert dice_loss(perfect, target, eps=0).item() == pytest.approx(0.0, abs=1e-6)
    wrong = -perfect
    assert dice_loss(wrong, target, eps=0).item() == pytest.approx(1.0, abs=1e-6)


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
