"""Task losses."""

from sapiens_kit.losses.seg import SegmentationLoss, dice_loss

__all__ = ["SegmentationLoss", "dice_loss"]
