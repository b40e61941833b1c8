"""Segmentation loss against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from sapiens_kit.losses import SegmentationLoss, dice_loss


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
