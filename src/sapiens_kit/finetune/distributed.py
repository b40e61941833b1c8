"""Helpers the multi-device trainer presets (``trainer=fsdp``) instantiate."""

from __future__ import annotations

from torch import nn


def transformer_blocks() -> set[type[nn.Module]]:
    """Module classes FSDP wraps (and shards) one by one: timm's ViT ``Block`` (Sapiens v1) and
    ``EvaBlock`` (Sapiens2). Everything else (embeddings, final norm, head) stays in the root unit.
    """
    from timm.models.eva import EvaBlock
    from timm.models.vision_transformer import Block

    return {Block, EvaBlock}
