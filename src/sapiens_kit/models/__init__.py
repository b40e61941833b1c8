"""Backbones, weights and heads."""

from sapiens_kit.models._pretrained import PretrainedCfg, WeightsError, WeightsUnavailableError
from sapiens_kit.models._registry import (
    create_backbone,
    get_pretrained_cfg,
    list_backbones,
    list_pretrained,
)

__all__ = [
    "PretrainedCfg",
    "WeightsError",
    "WeightsUnavailableError",
    "create_backbone",
    "get_pretrained_cfg",
    "list_backbones",
    "list_pretrained",
]
