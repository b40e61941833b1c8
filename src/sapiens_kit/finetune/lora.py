"""LoRA adapters on a Sapiens backbone through ``peft``, and merging them back for export.

Adapters go on the ``nn.Linear`` layers inside each transformer block's parts named by the
backbone's ``block_layout.adapter_parts`` (attention and MLP): for Sapiens v1 (timm ``Block``)
``attn.qkv``, ``attn.proj``, ``mlp.fc1``, ``mlp.fc2``; for Sapiens2 (timm ``EvaBlock``)
``attn.q_proj/k_proj/v_proj/proj`` and the MLP's linears. ``peft`` injects them in place
(``inject_adapter_in_model``), so parameter names keep their block prefix and the layer-decay
numbering still applies; base weights become ``<layer>.base_layer.weight`` and are frozen.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from sapiens_kit.models import BlockLayout, block_layouts


@dataclass
class LoraOptions:
    """``model.lora`` settings.

    Args:
        r: Adapter rank.
        alpha: Scaling numerator (the update is scaled by ``alpha / r``).
        dropout: Dropout on the adapter input.
        targets: ``attn`` and/or ``mlp`` (every linear of that part), or leaf names such as
            ``qkv``, ``proj``, ``fc1``, ``q_proj``; only layers inside the blocks are matched.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    targets: Sequence[str] = field(default_factory=lambda: ["attn", "mlp"])

    @classmethod
    def from_dict(cls, options: dict[str, Any] | LoraOptions) -> LoraOptions:
        """Validate a ``model.lora`` mapping; unknown keys are an error naming them."""
        if isinstance(options, LoraOptions):
            return options
        known = {"r", "alpha", "dropout", "targets"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"model.lora: unknown keys {unknown} (known: {sorted(known)})")
        out = cls(**options)
        if isinstance(out.targets, str):
            out.targets = [out.targets]
        if int(out.r) < 1:
            raise ValueError(f"model.lora.r must be >= 1, got {out.r}")
        if not 0.0 <= float(out.dropout) < 1.0:
            raise ValueError(f"model.lora.dropout must be in [0, 1), got {out.dropout}")
        return out


def _adapted_part(layouts: Sequence[BlockLayout], name: str) -> tuple[str, str] | None:
    """``(part, leaf)`` of a module inside a block part LoRA may adapt (``attn``, ``qkv``)."""
    for layout in layouts:
        split = layout.split_block(name)
        if split is None:
            continue
        part, _, leaf = split[1].partition(".")
        return (part, leaf) if part in layout.adapter_parts and leaf else None
    return None


def lora_target_names(backbone: nn.Module, targets: Sequence[str]) -> list[str]:
    """Full names of the block linears ``targets`` selects (see :class:`LoraOptions`); the
    blocks are found through the backbone's ``block_layout``."""
    own = getattr(backbone, "block_layout", None)
    layouts = [own] if own is not None else block_layouts()
    names = []
    for name, module in backbone.named_modules():
        found = _adapted_part(layouts, name)
        if found is None or not isinstance(module, nn.Linear):
            continue
        part, leaf = found
        if part in targets or leaf.rsplit(".", 1)[-1] in targets or leaf in targets:
            names.append(name)
    if not names:
        raise ValueError(
            f"model.lora.targets={list(targets)} matches no linear layer inside the backbone "
            f"blocks (use attn, mlp or leaf names such as qkv, proj, fc1, fc2)"
        )
    return names


def apply_lora(backbone: nn.Module, options: dict[str, Any] | LoraOptions) -> nn.Module:
    """Inject LoRA adapters into ``backbone`` in place; everything but the adapters is frozen."""
    from peft import LoraConfig, inject_adapter_in_model

    opts = LoraOptions.from_dict(options)
    config = LoraConfig(
        r=int(opts.r), lora_alpha=int(opts.alpha), lora_dropout=float(opts.dropout),
        target_modules=lora_target_names(backbone, opts.targets), bias="none",
    )
    return inject_adapter_in_model(config, backbone)


def has_lora(module: nn.Module) -> bool:
    """Whether ``module`` contains peft LoRA layers."""
    from peft.tuners.lora import LoraLayer

    return any(isinstance(m, LoraLayer) for m in module.modules())


def merge_lora(backbone: nn.Module) -> nn.Module:
    """A copy of ``backbone`` with every adapter folded into its base weight (plain modules).

    The result has the original layer names (``blocks.0.attn.qkv.weight``), so its state dict
    loads into a backbone built without LoRA. ``backbone`` itself is left unchanged.
    """
    from peft.tuners.lora import LoraLayer

    merged = copy.deepcopy(backbone)
    for name, module in list(merged.named_modules()):
        if not isinstance(module, LoraLayer):
            continue
        module.merge()
        parent_name, _, attr = name.rpartition(".")
        parent = merged.get_submodule(parent_name) if parent_name else merged
        setattr(parent, attr, module.get_base_layer())
    merged.requires_grad_(True)
    return merged
