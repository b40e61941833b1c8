"""Checkpoints a run always leaves behind, and what the run was trained on.

:class:`FinalCheckpoints` makes sure every named checkpoint file of the run (``last.ckpt``,
``best.ckpt``) exists and that ``last.ckpt`` holds the final weights when ``fit`` ends, whatever
the run length: a ``trainer.max_steps`` run shorter than an epoch, or one whose validation never
ran or never logged the monitored metric, otherwise ends with no ``best.ckpt`` (or no checkpoint
at all) and exit status 0.

:class:`RecordData` stores the composed data config in every checkpoint under
:data:`DATA_KEY`, so ``evaluate ckpt=<run>/checkpoints/last.ckpt`` without ``data=`` scores the
data the run was trained with.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger("sapiens_kit")

#: Top-level checkpoint key holding the run's data config (a plain dict, ``data.*`` keys).
DATA_KEY = "sapiens_kit_data"


def _named_file(callback: ModelCheckpoint) -> Path | None:
    """The one file a checkpoint callback writes (``<dirpath>/<filename>.ckpt``), or ``None``
    when its file name is a pattern (``{epoch}-{step}``) or it has no folder yet."""
    if not callback.dirpath or not callback.filename or "{" in callback.filename:
        return None
    return Path(callback.dirpath) / f"{callback.filename}{callback.FILE_EXTENSION}"


class FinalCheckpoints(L.Callback):
    """At the end of ``fit``, write each plain-named checkpoint file that is missing or stale.

    - A checkpoint without ``monitor`` (``last.ckpt``) is rewritten with the final weights
      unless it was saved at the final optimizer step (a ``max_steps`` stop mid-epoch).
    - A monitored checkpoint (``best.ckpt``) that was never written gets the final weights, with a
      warning saying that the monitored metric was never computed (or never gave a usable value).

    Each file keeps its callback's ``save_weights_only``. The decisions come from the callbacks'
    state, which every process shares, so all ranks take part in the same saves. Interrupted or
    failed runs (an exception, ``fast_dev_run``) write nothing here.
    """

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Save what the run's checkpoint callbacks left missing."""
        if getattr(trainer, "fast_dev_run", False) or trainer.interrupted:
            return
        for callback in trainer.checkpoint_callbacks:
            if not isinstance(callback, ModelCheckpoint):
                continue
            path = _named_file(callback)
            if path is None:
                continue
            if callback.monitor is None:
                if getattr(callback, "_last_global_step_saved", -1) == trainer.global_step \
                        and callback.best_model_path:
                    continue
                trainer.save_checkpoint(path, weights_only=callback.save_weights_only)
                callback.best_model_path = str(path)
                continue
            if callback.best_model_path:
                continue
            trainer.save_checkpoint(path, weights_only=callback.save_weights_only)
            callback.best_model_path = str(path)
            if callback.monitor not in trainer.callback_metrics:
                why = (f"'{callback.monitor}' was never computed (validation did not run or did "
                       "not log it; e.g. a trainer.max_steps run shorter than an epoch)")
            else:
                why = f"'{callback.monitor}' never had a usable value (NaN?)"
            if trainer.is_global_zero:
                log.warning("%s holds the final weights, not the best: %s", path, why)


def data_record(data: Any) -> dict[str, Any]:
    """The data config as a plain dict to store with a run.

    Interpolations are resolved, except bundled-asset paths (``${sk_asset:demo_pose}``), kept as
    written so the record survives reinstalling the package; a relative ``root`` is made absolute
    so the record works from another working directory.
    """
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(data, DictConfig):
        data = OmegaConf.create(data)
    raw = OmegaConf.to_container(data, resolve=False)
    resolved = OmegaConf.to_container(data, resolve=True)
    assert isinstance(raw, dict) and isinstance(resolved, dict)
    out: dict[str, Any] = {}
    for key, value in resolved.items():
        written = raw[key]
        if isinstance(written, str) and written.startswith("${sk_asset:"):
            value = written
        elif key == "root" and isinstance(value, str) and not value.startswith("${") \
                and not Path(value).is_absolute() and Path(value).exists():
            value = str(Path(value).resolve())
        out[str(key)] = value
    return out


class RecordData(L.Callback):
    """Store the run's data config in each checkpoint, under :data:`DATA_KEY`.

    The record is handed to the task, which writes it from its own ``on_save_checkpoint``:
    Lightning skips callbacks' checkpoint hooks for weights-only files (the demo's best.ckpt),
    but always calls the module's.

    Args:
        data: The composed ``data`` config group (``_target_`` and its options).
    """

    def __init__(self, data: Any) -> None:
        self.record = data_record(data) if data else None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Give the task the record to write into every checkpoint."""
        pl_module.data_record = self.record


__all__ = ["DATA_KEY", "FinalCheckpoints", "RecordData", "data_record"]
