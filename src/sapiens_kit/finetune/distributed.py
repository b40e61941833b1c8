"""Helpers the multi-device trainer presets (``trainer=fsdp``) instantiate."""

from __future__ import annotations

from torch import nn

from sapiens_kit.models import block_layouts


def transformer_blocks() -> set[type[nn.Module]]:
    """Module classes FSDP wraps (and shards) one by one: the ``block_layout.block_classes`` of
    every registered backbone family (timm's ``Block`` for Sapiens v1, ``EvaBlock`` for Sapiens2).
    Everything else (embeddings, final norm, head) stays in the root unit.
    """
    return {cls for layout in block_layouts() for cls in layout.block_classes}
