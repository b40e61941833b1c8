"""Optimizer parameter groups with layer-wise LR decay, and step-based LR schedules.

Layer ids follow the official Sapiens ``LayerDecayOptimWrapperConstructor``: embeddings (patch
embed, position embedding, class/mask tokens) are layer 0, block ``i`` is layer ``i + 1``, and
everything else (the final norm and the head) is layer ``L + 1``; the LR of layer ``id`` is
``base_lr * rate ** (L + 1 - id)``. 1-D parameters, biases and position embeddings get no weight
decay.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

_BLOCK = re.compile(r"^backbone\.(?:model\.)?blocks\.(\d+)\.")
_EMBED = ("pos_embed", "patch_embed", "cls_token", "mask_token", "reg_token", "rope")


def layer_id(name: str, num_layers: int) -> int:
    """Official layer id of a task parameter named ``backbone.*`` or ``head.*``."""
    match = _BLOCK.match(name)
    if match:
        return int(match.group(1)) + 1
    if name.startswith("backbone.") and any(tok in name for tok in _EMBED):
        return 0
    return num_layers + 1


def no_weight_decay(name: str, param: torch.Tensor) -> bool:
    """Whether the official recipe exempts ``param`` from weight decay."""
    return param.ndim == 1 or name.endswith(".bias") or "pos_embed" in name


def param_groups(
    named_params: Iterable[tuple[str, nn.Parameter]],
    num_layers: int,
    lr: float,
    weight_decay: float,
    layer_decay: float | None,
) -> list[dict[str, Any]]:
    """Group trainable parameters by (layer id, decay) with their scaled learning rates."""
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in named_params:
        if not param.requires_grad:
            continue
        lid = layer_id(name, num_layers) if layer_decay else num_layers + 1
        skip = no_weight_decay(name, param)
        scale = layer_decay ** (num_layers + 1 - lid) if layer_decay else 1.0
        group = groups.setdefault(
            (lid, skip),
            {"params": [], "param_names": [], "lr": lr * scale, "lr_scale": scale,
             "weight_decay": 0.0 if skip else weight_decay, "layer_id": lid},
        )
        group["params"].append(param)
        group["param_names"].append(name)
    return [groups[k] for k in sorted(groups)]


def lr_lambda(
    schedule: str,
    total_steps: int,
    warmup_steps: int = 0,
    warmup_start_factor: float = 1e-3,
    milestones: Sequence[float] = (),
    gamma: float = 0.1,
    power: float = 1.0,
    min_factor: float = 0.0,
) -> Any:
    """A ``step -> factor`` function: linear warm-up, then ``poly``, ``cosine``, ``multistep``
    or ``constant``. ``milestones`` are fractions of ``total_steps`` (0.8 = 80 %) or step counts
    (values >= 1)."""
    total = max(total_steps, 1)
    marks = [int(m * total) if m < 1 else int(m) for m in milestones]

    def factor(step: int) -> float:
        if step < warmup_steps:
            return warmup_start_factor + (1 - warmup_start_factor) * step / max(warmup_steps, 1)
        progress = min(max(step - warmup_steps, 0) / max(total - warmup_steps, 1), 1.0)
        match schedule:
            case "poly":
                return min_factor + (1 - min_factor) * (1 - progress) ** power
            case "cosine":
                return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
            case "multistep":
                return gamma ** sum(step >= m for m in marks)
            case "constant":
                return 1.0
        raise ValueError(f"unknown schedule '{schedule}' (poly, cosine, multistep, constant)")

    factor(0)  # fail at configuration time on an unknown schedule name
    return factor


def build_optimizer(
    groups: list[dict[str, Any]], name: str, lr: float, betas: Sequence[float]
) -> torch.optim.Optimizer:
    """AdamW (official) or SGD over prepared parameter groups."""
    clean = [{k: v for k, v in g.items() if k != "param_names"} for g in groups]
    match name.lower():
        case "adamw":
            return torch.optim.AdamW(clean, lr=lr, betas=tuple(betas))  # type: ignore[arg-type]
        case "sgd":
            return torch.optim.SGD(clean, lr=lr, momentum=0.9)
    raise ValueError(f"unknown optimizer '{name}' (adamw, sgd)")


def build_scheduler(optimizer: torch.optim.Optimizer, **kwargs: Any) -> LambdaLR:
    """A per-step ``LambdaLR`` built from :func:`lr_lambda` arguments."""
    return LambdaLR(optimizer, lr_lambda(**kwargs))
