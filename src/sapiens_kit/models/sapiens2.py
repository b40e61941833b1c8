"""Sapiens2 backbones (2026) from timm's ``vit_*_patch16_sapiens2`` models.

timm implements the architecture (RoPE, grouped-query attention, SwiGLU, register tokens); this
wrapper only gives it the kit's feature-map contract: ``(B, 3, H, W) -> (B, D, H/16, W/16)`` with
the class and register tokens removed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import timm
import torch
from torch import nn

from sapiens_kit.models._checkpoint import read_checkpoint, split_state_dict
from sapiens_kit.models._pretrained import (
    SAPIENS2_LICENSE,
    PretrainedCfg,
    WeightsError,
    hub_download,
    resolve_source,
)
from sapiens_kit.models._registry import (
    get_pretrained_cfg,
    is_registered_weights,
    register_backbone,
    register_pretrained,
)

log = logging.getLogger(__name__)

#: Kit name -> timm model name.
TIMM_NAMES = {
    "sapiens2_0_1b": "vit_base_patch16_sapiens2",
    "sapiens2_0_4b": "vit_large_patch16_sapiens2",
    "sapiens2_0_8b": "vit_huge_patch16_sapiens2",
    "sapiens2_1b": "vit_giant_patch16_sapiens2",
    "sapiens2_5b": "vit_5b_patch16_sapiens2",
}


class Sapiens2Backbone(nn.Module):
    """A timm Sapiens2 encoder returning the last layer's normed patch features as a map."""

    def __init__(
        self, timm_name: str, img_size: tuple[int, int], patch_padding: int = 0, **overrides: Any
    ) -> None:
        super().__init__()
        if patch_padding:
            raise ValueError(
                f"patch_padding={patch_padding}: Sapiens2 backbones have no padded patch conv "
                "(use model.patch_padding=0)"
            )
        if "depth" in overrides and "num_kv_heads" not in overrides:
            heads = overrides.get("num_heads", 1)
            overrides["num_kv_heads"] = (heads,) * int(overrides["depth"])
        self.model = timm.create_model(
            timm_name, pretrained=False, num_classes=0, global_pool="", img_size=img_size,
            **overrides,
        )
        self.timm_name = timm_name
        self.embed_dim: int = self.model.embed_dim
        self.num_layers = len(self.model.blocks)
        self.num_prefix_tokens: int = self.model.num_prefix_tokens
        self.patch_padding = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``(B, 3, H, W)`` into ``(B, D, H/16, W/16)``."""
        height, width = x.shape[-2] // 16, x.shape[-1] // 16
        tokens = self.model.forward_features(x)[:, self.num_prefix_tokens :]
        return tokens.transpose(1, 2).reshape(x.shape[0], self.embed_dim, height, width)

    def forward_intermediates(self, x: torch.Tensor, **kwargs: Any) -> Any:
        """timm's ``forward_intermediates`` of the wrapped model (NCHW maps)."""
        return self.model.forward_intermediates(x, **kwargs)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass to save activation memory."""
        self.model.set_grad_checkpointing(enable)

    @property
    def default_out_indices(self) -> tuple[int, ...]:
        """Four evenly spaced block indices for multi-level heads."""
        depth = self.num_layers
        return tuple(sorted({max(0, round(depth * f) - 1) for f in (0.25, 0.5, 0.75, 1.0)}))

    def load_weights(self, weights: str) -> dict[str, torch.Tensor]:
        """Load timm- or Meta-layout Sapiens2 weights strictly; returns any head weights."""
        cfg: PretrainedCfg | None = None
        if is_registered_weights(weights):
            cfg = get_pretrained_cfg(weights)
            path = hub_download(str(cfg.hf_hub_id), str(cfg.hf_hub_filename))
        else:
            path = resolve_source(weights)
        backbone_sd, head_sd = split_state_dict(read_checkpoint(path))
        try:
            self.load_state_dict_strict(backbone_sd)
        except WeightsError as err:
            raise WeightsError(f"{path}: {err}") from None
        return head_sd

    def load_state_dict_strict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load a backbone state dict, mapping Meta's layout with timm's own filter."""
        from timm.models.eva import checkpoint_filter_fn

        own = self.model.state_dict()
        sd = {k.removeprefix("model."): v for k, v in state_dict.items()}
        if not set(own) <= set(sd):
            sd = checkpoint_filter_fn(sd, self.model)
        sd = {k: v for k, v in sd.items() if not k.startswith(("head.", "fc_norm."))}
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        bad_shapes = [k for k in own if k in sd and own[k].shape != sd[k].shape]
        if missing or unexpected or bad_shapes:
            raise WeightsError(
                "checkpoint does not match the Sapiens2 architecture "
                f"{self.timm_name}: missing {missing[:8]}, unexpected {unexpected[:8]}, "
                f"shape mismatch {bad_shapes[:5]}"
            )
        self.model.load_state_dict(sd, strict=True)


def _cfgs() -> dict[str, PretrainedCfg]:
    return {
        f"{name}.fb": PretrainedCfg(
            arch=name, tag="fb", hf_hub_id=f"timm/{timm_name}.fb",
            hf_hub_filename="model.safetensors", license=SAPIENS2_LICENSE,
            paper="arXiv:2604.21681", origin_url="https://github.com/facebookresearch/sapiens2",
        )
        for name, timm_name in TIMM_NAMES.items()
    }


default_cfgs = _cfgs()
register_pretrained(default_cfgs)


def _make(name: str, img_size: tuple[int, int], overrides: dict[str, Any]) -> Sapiens2Backbone:
    return Sapiens2Backbone(TIMM_NAMES[name], img_size=img_size, **overrides)


@register_backbone
def sapiens2_0_1b(img_size: tuple[int, int] = (1024, 768), **overrides: Any) -> Sapiens2Backbone:
    """Sapiens2-0.1B (timm ``vit_base_patch16_sapiens2``)."""
    return _make("sapiens2_0_1b", img_size, overrides)


@register_backbone
def sapiens2_0_4b(img_size: tuple[int, int] = (1024, 768), **overrides: Any) -> Sapiens2Backbone:
    """Sapiens2-0.4B (timm ``vit_large_patch16_sapiens2``)."""
    return _make("sapiens2_0_4b", img_size, overrides)


@register_backbone
def sapiens2_0_8b(img_size: tuple[int, int] = (1024, 768), **overrides: Any) -> Sapiens2Backbone:
    """Sapiens2-0.8B (timm ``vit_huge_patch16_sapiens2``)."""
    return _make("sapiens2_0_8b", img_size, overrides)


@register_backbone
def sapiens2_1b(img_size: tuple[int, int] = (1024, 768), **overrides: Any) -> Sapiens2Backbone:
    """Sapiens2-1B (timm ``vit_giant_patch16_sapiens2``)."""
    return _make("sapiens2_1b", img_size, overrides)


@register_backbone
def sapiens2_5b(img_size: tuple[int, int] = (1024, 768), **overrides: Any) -> Sapiens2Backbone:
    """Sapiens2-5B (timm ``vit_5b_patch16_sapiens2``)."""
    return _make("sapiens2_5b", img_size, overrides)
