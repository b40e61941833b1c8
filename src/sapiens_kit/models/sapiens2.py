"""Sapiens2 backbones (2026) from timm's ``vit_*_patch16_sapiens2`` models.

timm implements the architecture (RoPE, grouped-query attention, SwiGLU, register tokens); this
wrapper only gives it the kit's feature-map contract: ``(B, 3, H, W) -> (B, D, H/16, W/16)`` with
the class and register tokens removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import timm
import torch
from timm.models.eva import EvaBlock
from torch import nn

from sapiens_kit.models._pretrained import SAPIENS2_LICENSE, PretrainedCfg
from sapiens_kit.models._registry import register_backbone, register_family
from sapiens_kit.models.backbone import BlockLayout, evenly_spaced_indices

#: Kit name -> timm model name.
TIMM_NAMES = {
    "sapiens2_0_1b": "vit_base_patch16_sapiens2",
    "sapiens2_0_4b": "vit_large_patch16_sapiens2",
    "sapiens2_0_8b": "vit_huge_patch16_sapiens2",
    "sapiens2_1b": "vit_giant_patch16_sapiens2",
    "sapiens2_5b": "vit_5b_patch16_sapiens2",
}


@register_family
class Sapiens2Backbone(nn.Module):
    """A timm Sapiens2 encoder returning the last layer's normed patch features as a map.

    Satisfies the :class:`~sapiens_kit.models.backbone.Backbone` contract; the timm model sits
    under ``model.``, so its blocks are ``model.blocks.<i>``.
    """

    block_layout: ClassVar[BlockLayout] = BlockLayout(
        blocks="model.blocks",
        embeddings=("pos_embed", "patch_embed", "cls_token", "mask_token", "reg_token", "rope"),
        no_weight_decay=("pos_embed", "cls_token", "reg_token", "mask_token"),
        block_classes=(EvaBlock,),
    )

    def __init__(
        self, timm_name: str, img_size: tuple[int, int], patch_padding: int = 0, **overrides: Any
    ) -> None:
        super().__init__()
        if patch_padding:
            raise ValueError(
                f"patch_padding={patch_padding}: Sapiens2 backbones have no padded patch conv "
                "(use model.patch_padding=0)"
            )
        num_blocks = overrides.get("depth")  # ViT depth: the number of blocks
        if num_blocks is not None and "num_kv_heads" not in overrides:
            heads = overrides.get("num_heads", 1)
            overrides["num_kv_heads"] = (heads,) * int(num_blocks)
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
        return evenly_spaced_indices(self.num_layers)

    def filter_checkpoint(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """timm or Meta layout (with or without this wrapper's ``model.``) -> this module's names,
        mapped with timm's own Eva filter and without a classifier head."""
        from timm.models.eva import checkpoint_filter_fn

        own = self.model.state_dict()
        sd = {k.removeprefix("model."): v for k, v in state_dict.items()}
        if not set(own) <= set(sd):
            sd = checkpoint_filter_fn(sd, self.model)
        return {f"model.{k}": v for k, v in sd.items() if not k.startswith(("head.", "fc_norm."))}


_SAPIENS2 = {"hf_hub_filename": "model.safetensors", "license": SAPIENS2_LICENSE,
             "paper": "arXiv:2604.21681", "origin_url": "https://github.com/facebookresearch/sapiens2"}

#: Every registered Sapiens2 weight (timm's Hub copies of Meta's release), ``arch.tag`` -> metadata.
default_cfgs: dict[str, PretrainedCfg] = {
    "sapiens2_0_1b.fb": PretrainedCfg(
        arch="sapiens2_0_1b", tag="fb", hf_hub_id="timm/vit_base_patch16_sapiens2.fb", **_SAPIENS2),
    "sapiens2_0_4b.fb": PretrainedCfg(
        arch="sapiens2_0_4b", tag="fb", hf_hub_id="timm/vit_large_patch16_sapiens2.fb",
        **_SAPIENS2),
    "sapiens2_0_8b.fb": PretrainedCfg(
        arch="sapiens2_0_8b", tag="fb", hf_hub_id="timm/vit_huge_patch16_sapiens2.fb", **_SAPIENS2),
    "sapiens2_1b.fb": PretrainedCfg(
        arch="sapiens2_1b", tag="fb", hf_hub_id="timm/vit_giant_patch16_sapiens2.fb", **_SAPIENS2),
    "sapiens2_5b.fb": PretrainedCfg(
        arch="sapiens2_5b", tag="fb", hf_hub_id="timm/vit_5b_patch16_sapiens2.fb", **_SAPIENS2),
}


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
