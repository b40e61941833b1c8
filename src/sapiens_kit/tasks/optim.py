"""Optimizer parameter groups with layer-wise LR decay, and step-based LR schedules.

Layer ids follow the official Sapiens ``LayerDecayOptimWrapperConstructor``: embeddings (patch
embed, position embedding, class/mask tokens) are layer 0, block ``i`` is layer ``i + 1``, and
everything else (the final norm and the head) is layer ``L + 1``; the LR of layer ``id`` is
``base_lr * rate ** (L + 1 - id)``. 1-D parameters, biases and position embeddings get no weight
decay (nor the class/register tokens Sapiens2 has; v1 task models have none).

Which names are blocks, embeddings and tokens is the backbone family's declaration
(``block_layout``, see ``models/backbone.py``); without one given, every registered family's
layout is tried.

timm's ``param_groups_layer_decay`` applies the same rule to one timm model through its
``group_matcher``; the task needs backbone and head in one numbering, keeps parameters that are
only frozen for a while (so they can be unfrozen without rebuilding the optimizer) and must see
through FSDP's wrapper names, so the rule is applied here (the tests cross-check it with timm).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from sapiens_kit.models import BlockLayout, block_layouts

log = logging.getLogger(__name__)

#: LR schedules after warm-up (``model.schedule``).
SCHEDULES = ("poly", "cosine", "multistep", "constant")
_BACKBONE = "backbone."
#: Wrapper segments FSDP / activation checkpointing insert into parameter names.
_WRAPPERS = re.compile(r"(?:_fsdp_wrapped_module|_checkpoint_wrapped_module|_orig_mod)\.")


def clean_name(name: str) -> str:
    """A parameter name without FSDP / checkpoint-wrapper / ``torch.compile`` segments."""
    return _WRAPPERS.sub("", name)


def _layouts(layout: BlockLayout | None) -> list[BlockLayout]:
    return [layout] if layout is not None else block_layouts()


def layer_id(name: str, num_layers: int, layout: BlockLayout | None = None) -> int:
    """Official layer id of a task parameter named ``backbone.*`` or ``head.*``.

    Args:
        name: The task's parameter name (wrapper segments are ignored).
        num_layers: Number of blocks ``L``.
        layout: The backbone's ``block_layout``; ``None``: any registered family's.
    """
    name = clean_name(name)
    if not name.startswith(_BACKBONE):
        return num_layers + 1
    inner = name.removeprefix(_BACKBONE)
    layouts = _layouts(layout)
    for lay in layouts:
        index = lay.block_index(inner)
        if index is not None:
            return index + 1
    if any(lay.is_embedding(inner) for lay in layouts):
        return 0
    return num_layers + 1


def no_weight_decay(name: str, ndim: int, layout: BlockLayout | None = None) -> bool:
    """Whether the official recipe exempts a parameter with ``ndim`` dimensions (as built, not as
    a wrapper may have flattened it) from weight decay: 1-D, biases, position embedding, tokens."""
    return ndim <= 1 or name.endswith(".bias") or any(
        lay.skips_weight_decay(name) for lay in _layouts(layout))


def param_groups(
    named_params: Iterable[tuple[str, nn.Parameter]],
    num_layers: int,
    lr: float,
    weight_decay: float,
    layer_decay: float | None,
    include: set[str] | None = None,
    ndims: Mapping[str, int] | None = None,
    layout: BlockLayout | None = None,
) -> list[dict[str, Any]]:
    """Group parameters by (layer id, decay) with their scaled learning rates.

    Args:
        named_params: ``(name, parameter)`` pairs of the task.
        num_layers: Number of transformer blocks ``L``.
        lr: Base learning rate (layer ``L + 1``).
        weight_decay: Weight decay of the parameters that have it.
        layer_decay: Per-layer rate; ``None`` or 0 gives every parameter the base LR.
        include: Names to optimise; default: the parameters that require grad now.
        ndims: Each parameter's number of dimensions before wrapping, by clean name. Needed
            once FSDP has sharded the model: its parameters are then flat 1-D views, which
            would otherwise all be exempted from weight decay.
        layout: The backbone's ``block_layout``; ``None``: any registered family's.
    """
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for raw_name, param in named_params:
        name = clean_name(raw_name)
        if (name not in include) if include is not None else not param.requires_grad:
            continue
        lid = layer_id(name, num_layers, layout) if layer_decay else num_layers + 1
        skip = no_weight_decay(name, ndims[name] if ndims is not None else param.ndim, layout)
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
    total_steps: int | Callable[[], int],
    warmup_steps: int = 0,
    warmup_start_factor: float = 1e-3,
    milestones: Sequence[float] = (),
    gamma: float = 0.1,
    power: float = 1.0,
    min_factor: float = 0.0,
) -> Any:
    """A ``step -> factor`` function: linear warm-up, then ``poly``, ``cosine``, ``multistep``
    or ``constant``. ``milestones`` are fractions of ``total_steps`` (0.8 = 80 %) or step counts
    (values >= 1).

    ``total_steps`` may be a function, read at every step: the task only learns the length of
    the run once training starts (see ``BaseTask.on_train_start``). Step 0 gives the same
    factor whatever the total.
    """
    if schedule not in SCHEDULES:  # fail at configuration time, not at the first decay step
        raise ValueError(f"unknown schedule '{schedule}' ({', '.join(SCHEDULES)})")

    def total() -> int:
        return max(int(total_steps() if callable(total_steps) else total_steps), 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return warmup_start_factor + (1 - warmup_start_factor) * step / max(warmup_steps, 1)
        n = total()
        progress = min(max(step - warmup_steps, 0) / max(n - warmup_steps, 1), 1.0)
        match schedule:
            case "poly":
                return min_factor + (1 - min_factor) * (1 - progress) ** power
            case "cosine":
                return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
            case "multistep":
                marks = [round(m * n) if m < 1 else int(m) for m in milestones]
                return gamma ** sum(step >= m for m in marks)
        return 1.0  # constant

    return factor


def check_schedule(
    trainer: Any, total_steps: int, warmup_steps: int, milestones: Sequence[float], schedule: str
) -> None:
    """Fail on gradient-accumulation settings the per-step schedule cannot follow; warn when
    the schedule does not fit in the run.

    The schedule counts optimizer steps (``trainer.estimated_stepping_batches``: batches per
    epoch / ``accumulate_grad_batches``, times epochs), which assumes a constant accumulation.
    """
    from lightning.pytorch.callbacks import GradientAccumulationScheduler

    if trainer.fast_dev_run:
        return
    accumulate = int(trainer.accumulate_grad_batches)
    if any(isinstance(c, GradientAccumulationScheduler) for c in trainer.callbacks):
        raise ValueError(
            "a GradientAccumulationScheduler callback changes trainer.accumulate_grad_batches "
            "during the run, but the per-step LR schedule (model.schedule="
            f"{schedule}) is laid out for a constant accumulation: use a fixed "
            "trainer.accumulate_grad_batches=N instead"
        )
    batches = trainer.num_training_batches
    if accumulate > 1 and math.isfinite(batches) and 0 < batches < accumulate:
        raise ValueError(
            f"trainer.accumulate_grad_batches={accumulate} is larger than the {int(batches)} "
            "training batches of an epoch: Lightning would step once per epoch on fewer "
            "batches than asked. Lower trainer.accumulate_grad_batches or data.batch_size"
        )
    if warmup_steps > total_steps:
        log.warning(
            "model.warmup_steps=%d exceeds the run's %d optimizer steps (epochs x batches / "
            "trainer.accumulate_grad_batches=%d): the LR never reaches model.lr. Warm-up and "
            "milestones count optimizer steps, not batches.", warmup_steps, total_steps,
            accumulate,
        )
    late = [m for m in milestones if m >= 1 and m >= total_steps]
    if schedule == "multistep" and late:
        log.warning("model.milestones %s (steps) are beyond the run's %d optimizer steps",
                    late, total_steps)


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
