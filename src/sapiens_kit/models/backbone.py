"""The backbone contract: what a task, layer decay, LoRA, FSDP and the weight loader may rely on.

Every backbone family (one file under ``models/``) builds modules that satisfy :class:`Backbone`,
and declares once, as a class attribute, how its parameters are named
(:class:`BlockLayout`). The shared code reads that declaration instead of hard-coding a family's
names:

- layer-wise LR decay (``tasks/optim.py``) and ``freeze_blocks`` number a parameter by the block it
  sits in (:meth:`BlockLayout.block_index`) and put the embeddings at layer 0;
- LoRA (``finetune/lora.py``) adapts the linears of the block parts in ``adapter_parts``;
- FSDP (``finetune/distributed.py``) wraps each instance of ``block_classes`` as one unit;
- the weight loader (``models/_builder.py``) maps a checkpoint with ``filter_checkpoint``.

A new family registers its class with ``@register_family`` and its sizes with
``@register_backbone``; the registry-driven tests then check it against this contract.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn


@dataclass(frozen=True)
class BlockLayout:
    """How a backbone family names its parameters (names relative to the backbone module).

    Args:
        blocks: Module path of the list of transformer blocks (``blocks``, ``model.blocks``);
            block ``i``'s parameters are named ``<blocks>.<i>.*``.
        embeddings: Name parts of the parameters before the first block (patch and position
            embeddings, class/register tokens), which layer decay puts at layer 0.
        no_weight_decay: Name parts exempted from weight decay besides 1-D tensors and biases
            (position embeddings, tokens).
        adapter_parts: Block children whose ``nn.Linear`` layers LoRA may adapt.
        block_classes: Module classes of the blocks; FSDP wraps each instance as one unit.
    """

    blocks: str
    embeddings: tuple[str, ...]
    no_weight_decay: tuple[str, ...] = ()
    adapter_parts: tuple[str, ...] = ("attn", "mlp")
    block_classes: tuple[type[nn.Module], ...] = ()
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", re.compile(rf"^{re.escape(self.blocks)}\.(\d+)\."))

    def split_block(self, name: str) -> tuple[int, str] | None:
        """``(block index, rest of the name)`` for a name inside a block, else ``None``."""
        match = self._pattern.match(name)
        return (int(match.group(1)), name[match.end():]) if match else None

    def block_index(self, name: str) -> int | None:
        """The block a parameter or module name belongs to, or ``None`` outside the blocks."""
        split = self.split_block(name)
        return split[0] if split else None

    def is_embedding(self, name: str) -> bool:
        """Whether ``name`` is one of the embedding parameters (layer 0)."""
        return self.split_block(name) is None and any(part in name for part in self.embeddings)

    def skips_weight_decay(self, name: str) -> bool:
        """Whether ``name`` is a position embedding or token exempted from weight decay."""
        return any(part in name for part in self.no_weight_decay)


@runtime_checkable
class Backbone(Protocol):
    """The contract every registered backbone satisfies (checked for each by the tests).

    Attributes:
        embed_dim: Channels ``D`` of the feature map.
        num_layers: Number of transformer blocks ``L``.
        patch_padding: Zero padding of the patch conv (0 where the family has none).
        block_layout: The family's parameter naming (class attribute, see :class:`BlockLayout`).
    """

    embed_dim: int
    num_layers: int
    patch_padding: int
    block_layout: ClassVar[BlockLayout]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images -> ``(B, D, H/16, W/16)`` last-layer features."""
        ...

    def forward_intermediates(self, x: torch.Tensor, **kwargs: Any) -> Any:
        """timm's ``forward_intermediates``: per-block NCHW maps for multi-level heads."""
        ...

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass to save activation memory."""
        ...

    @property
    def default_out_indices(self) -> tuple[int, ...]:
        """The block indices multi-level heads read by default."""
        ...

    def filter_checkpoint(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map a checkpoint's backbone part (any layout the family accepts) onto the names and
        shapes of this module's own state dict; the loader then loads it strictly."""
        ...


def evenly_spaced_indices(num_layers: int) -> tuple[int, ...]:
    """Four evenly spaced block indices (dinov2's ``out_index``), the last block included."""
    return tuple(sorted({max(0, round(num_layers * f) - 1) for f in (0.25, 0.5, 0.75, 1.0)}))
