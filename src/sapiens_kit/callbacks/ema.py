"""Exponential moving average of the trained weights, on Lightning's ``WeightAveraging``.

Lightning's :class:`~lightning.pytorch.callbacks.EMAWeightAveraging` keeps a full copy of the
LightningModule. For a frozen or LoRA-adapted Sapiens backbone that copy would double the largest
part of the memory for parameters that never change, so this subclass averages only the parameters
the task optimises (``BaseTask.optimized_parameter_names``; all trainable ones for other modules)
and keeps Lightning's behaviour otherwise: the average is swapped in for validation, copied into
the model when training ends, and written as the checkpoint's ``state_dict`` (the live weights go
to ``current_model_state``, so ``load_from_checkpoint`` gives the EMA model and ``ckpt_path=``
resumes both exactly).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class _Tracked(nn.Module):
    """The averaged parameters, held by reference so ``AveragedModel`` copies only these."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        super().__init__()
        self.params = nn.ParameterList(params)


class EMA(EMAWeightAveraging):
    """EMA of the optimised weights, used for validation and saved checkpoints.

    Args:
        decay: Weight of the old average per update (0.999: a horizon of about 1000 steps).
        update_every_n_steps: Update after every n-th optimizer step.
        update_starting_at_step: First optimizer step (0-based) that updates the average; before
            it the average follows the weights.
        device: Where the average lives (default: with the weights; ``cpu`` saves accelerator
            memory at the cost of a transfer per update).
    """

    def __init__(
        self,
        decay: float = 0.999,
        update_every_n_steps: int = 1,
        update_starting_at_step: int | None = None,
        device: str | None = None,
    ) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"callbacks.ema.decay must be in (0, 1), got {decay}")
        super().__init__(
            device=device, use_buffers=False, decay=decay,
            update_every_n_steps=update_every_n_steps,
            update_starting_at_step=update_starting_at_step,
        )
        self.decay = decay
        self._names: list[str] = []
        self._tracked: _Tracked | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Check the run can be averaged and build the average of the optimised parameters."""
        if stage != "fit":
            return
        if isinstance(trainer.strategy, (FSDPStrategy, DeepSpeedStrategy)):
            raise ValueError(
                "callbacks=ema does not work with a sharded strategy "
                f"(trainer.strategy={type(trainer.strategy).__name__}): each rank holds only a "
                "shard of the weights. Use trainer=ddp (optionally with model.lora / "
                "model.grad_checkpointing to fit memory), or drop the EMA callback."
            )
        names_fn = getattr(pl_module, "optimized_parameter_names", None)
        wanted = names_fn() if callable(names_fn) else None
        named = [(n, p) for n, p in pl_module.named_parameters()
                 if (n in wanted if wanted is not None else p.requires_grad)]
        if not named:
            raise ValueError(
                "callbacks=ema: the model has no trainable parameter to average (is everything "
                "frozen? check model.freeze_backbone / model.freeze_blocks and the head)."
            )
        self._names = [n for n, _ in named]
        self._tracked = _Tracked([p for _, p in named])
        device = self._device or pl_module.device
        self._average_model = AveragedModel(
            self._tracked, device=device, use_buffers=False,
            multi_avg_fn=get_ema_multi_avg_fn(self.decay),
        )
        rank_zero_info(f"EMA (decay {self.decay}) of {sum(p.numel() for _, p in named):,} "
                       f"parameters in {len(named)} tensors")

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Put the average next to the weights once the strategy has placed the model."""
        if self._average_model is not None and self._device is None and self._tracked is not None:
            self._average_model.to(next(self._tracked.parameters()).device)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Validate the average while fitting (outside fit the model already holds it)."""
        if self._average_model is not None and trainer.state.fn == TrainerFn.FITTING:
            self._swap_models(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Swap the live weights back after a validation during fit."""
        if self._average_model is not None and trainer.state.fn == TrainerFn.FITTING:
            self._swap_models(pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        """Update the average after an optimizer step (``should_update`` decides)."""
        step_idx = trainer.global_step - 1
        if trainer.global_step > self._latest_update_step and self.should_update(step_idx=step_idx):
            assert self._average_model is not None and self._tracked is not None
            self._average_model.update_parameters(self._tracked)
            self._latest_update_step = trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Epoch-end updates are not used (the average follows optimizer steps)."""

    def _pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        assert self._average_model is not None and self._tracked is not None
        return list(zip(self._average_model.module.parameters(), self._tracked.parameters(),
                        strict=True))

    def _swap_models(self, pl_module: L.LightningModule) -> None:
        with torch.no_grad():
            for avg, cur in self._pairs():
                tmp = avg.detach().clone()
                avg.copy_(cur.detach())
                cur.copy_(tmp)

    def _copy_average_to_current(self, pl_module: L.LightningModule) -> None:
        with torch.no_grad():
            for avg, cur in self._pairs():
                cur.copy_(avg.detach())

    def average_state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged parameters under the LightningModule's names."""
        assert self._average_model is not None
        return {n: p.detach().clone() for n, p in
                zip(self._names, self._average_model.module.parameters(), strict=True)}

    def state_dict(self) -> dict[str, Any]:
        """Callback state for resuming (steps, and the names the average covers)."""
        return {"latest_update_step": self._latest_update_step, "names": list(self._names),
                "decay": self.decay}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the names must match the resumed model)."""
        self._latest_update_step = state_dict["latest_update_step"]
        saved = state_dict.get("names")
        if saved is not None and self._names and saved != self._names:
            raise ValueError("callbacks=ema: the checkpoint averaged other parameters than this "
                             "run optimises (were freeze/LoRA options changed?)")

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        """Write the average as ``state_dict`` and the live weights as ``current_model_state``."""
        if self._average_model is None:
            return
        current = checkpoint["state_dict"]
        checkpoint["current_model_state"] = current
        checkpoint["state_dict"] = {**current, **self.average_state_dict()}
        checkpoint["averaging_state"] = {"n_averaged": self._average_model.n_averaged.clone()}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        """Resume: the average from ``state_dict``, the live weights from
        ``current_model_state`` (Lightning has loaded ``state_dict`` into the model already)."""
        if (self._average_model is None or "current_model_state" not in checkpoint
                or trainer.state.fn != TrainerFn.FITTING):
            return
        with torch.no_grad():
            for name, avg in zip(self._names, self._average_model.module.parameters(),
                                 strict=True):
                avg.copy_(checkpoint["state_dict"][name])
            self._average_model.n_averaged.copy_(checkpoint["averaging_state"]["n_averaged"])
        pl_module.load_state_dict(checkpoint["current_model_state"])
