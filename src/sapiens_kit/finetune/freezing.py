"""Freezing the backbone (or its first blocks) for a while, and unfreezing it during a run.

The task (``tasks/base.py``) keeps two name sets: what can ever train (everything, or with LoRA the
adapters and the head) and what is frozen now. The optimizer holds both from the start, so
unfreezing needs no new optimizer, only ``requires_grad`` and, under DDP, a new wrapper.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

log = logging.getLogger(__name__)

#: Lightning privates that :func:`rewrap_ddp` calls. Checked by ``tests/finetune`` on every
#: Lightning version, so an upgrade that removes them fails a test, not a user's run.
DDP_PRIVATES = ("_setup_model", "_register_ddp_hooks")


def check_freezing(
    freeze_backbone: bool, freeze_blocks: int, unfreeze_at_epoch: int | None, num_layers: int,
    backbone: str,
) -> None:
    """Refuse contradictory ``model.freeze_*`` / ``model.unfreeze_at_epoch`` settings."""
    if not 0 <= freeze_blocks <= num_layers:
        raise ValueError(f"model.freeze_blocks={freeze_blocks} is outside 0..{num_layers} (the "
                         f"number of blocks of {backbone})")
    if unfreeze_at_epoch is not None and not (freeze_backbone or freeze_blocks):
        raise ValueError("model.unfreeze_at_epoch needs model.freeze_backbone=true or "
                         "model.freeze_blocks=N: there is nothing frozen to unfreeze")
    if unfreeze_at_epoch is not None and int(unfreeze_at_epoch) < 0:
        raise ValueError(f"model.unfreeze_at_epoch must be >= 0, got {unfreeze_at_epoch}")


def freeze(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    freeze_backbone: bool,
    freeze_blocks: int,
    layer_of: Callable[[str], int],
    prefix: str = "backbone.",
) -> tuple[set[str], set[str]]:
    """Freeze the backbone (``freeze_backbone``) or its embeddings and first ``freeze_blocks``
    blocks (layer id ``<= freeze_blocks``, see ``tasks/optim.layer_id``).

    Returns:
        ``(trainable, frozen)``: the names that could train before freezing, and those frozen now.
    """
    params = list(named_parameters)
    trainable = {name for name, param in params if param.requires_grad}
    frozen: set[str] = set()
    for name, param in params:
        if not name.startswith(prefix) or name not in trainable:
            continue
        if freeze_backbone or (freeze_blocks and layer_of(name) <= freeze_blocks):
            param.requires_grad_(False)
            frozen.add(name)
    return trainable, frozen


def unfreeze(module: nn.Module, frozen: set[str], trainer: Any | None = None) -> None:
    """Make the ``frozen`` parameters of ``module`` trainable again; under DDP, wrap the model
    anew (DDP only synchronises the parameters that required gradients when it was built)."""
    if not frozen:
        return
    for name, param in module.named_parameters():
        if name in frozen:
            param.requires_grad_(True)
    log.info("unfroze %d backbone tensors at epoch %d", len(frozen),
             trainer.current_epoch if trainer is not None else -1)
    if trainer is not None:
        rewrap_ddp(trainer)


def rewrap_ddp(trainer: Any) -> None:
    """Wrap the DDP strategy's module in a new ``DistributedDataParallel`` (no-op otherwise).

    Uses Lightning privates (:data:`DDP_PRIVATES`): there is no public way to re-wrap a running
    DDP model. Lightning 2.x has them; the test suite checks they still exist.
    """
    from lightning.pytorch.strategies import DDPStrategy
    from torch.nn.parallel import DistributedDataParallel

    strategy = trainer.strategy
    if not (isinstance(strategy, DDPStrategy)
            and isinstance(strategy.model, DistributedDataParallel)):
        return
    missing = [name for name in DDP_PRIVATES if not hasattr(strategy, name)]
    if missing:
        raise RuntimeError(f"this Lightning version lacks DDPStrategy.{', '.join(missing)}, "
                           "needed to unfreeze under DDP (model.unfreeze_at_epoch)")
    strategy.model = strategy._setup_model(strategy.model.module)
    strategy._register_ddp_hooks()  # communication hooks, if any were configured
