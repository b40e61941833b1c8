"""sapiens_kit: fine-tune Meta's Sapiens human-vision foundation models."""

from sapiens_kit.models import (
    PretrainedCfg,
    WeightsError,
    create_backbone,
    get_pretrained_cfg,
    list_backbones,
    list_pretrained,
)

__version__ = "0.1.0"

__all__ = [
    "PretrainedCfg",
    "WeightsError",
    "__version__",
    "create_backbone",
    "get_pretrained_cfg",
    "list_backbones",
    "list_pretrained",
]
