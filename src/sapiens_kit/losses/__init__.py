"""Task losses."""

from sapiens_kit.losses.depth import DepthLoss, silog_loss
from sapiens_kit.losses.normal import NormalLoss
from sapiens_kit.losses.pose import KeypointMSELoss, KeypointOHKMMSELoss
from sapiens_kit.losses.seg import SegmentationLoss, dice_loss

__all__ = [
    "DepthLoss",
    "KeypointMSELoss",
    "KeypointOHKMMSELoss",
    "NormalLoss",
    "SegmentationLoss",
    "dice_loss",
    "silog_loss",
]
