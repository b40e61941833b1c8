"""Stop a run on a NaN/inf loss before it reaches the weights."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch


class NonFiniteLossError(FloatingPointError):
    """Raised when the training loss is NaN or infinite."""


class NonFiniteLossGuard(L.Callback):
    """Raise :class:`NonFiniteLossError` on a NaN/inf training loss, naming the step.

    The check runs before ``backward``, so the bad loss never produces gradients, the optimizer
    and the EMA never see it, and no checkpoint is written after it: the last checkpoint on disk
    is the last good one (the error message gives its path). On several processes the decision is
    shared, so every rank stops at the same step instead of the others waiting forever.
    """

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           loss: torch.Tensor) -> None:
        """Check the loss of the current batch."""
        finite = bool(torch.isfinite(loss.detach()).all())
        finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
        if finite:
            return
        saved = [p for c in trainer.checkpoint_callbacks
                 for p in (getattr(c, "last_model_path", ""), getattr(c, "best_model_path", ""))
                 if p]
        last = max(saved, key=lambda p: Path(p).stat().st_mtime if Path(p).exists() else 0,
                   default="")
        raise NonFiniteLossError(
            f"non-finite training loss ({float(loss.detach().float().mean())}) at optimizer step "
            f"{trainer.global_step} (epoch {trainer.current_epoch}, batch "
            f"{trainer.fit_loop.epoch_loop.batch_progress.current.ready - 1}); the run stopped "
            "before the update. Last good checkpoint: "
            f"{last or 'none written yet'}. Lower model.lr, check the data, or use "
            "trainer.precision=32-true / bf16-mixed instead of 16-mixed."
        )
