"""Work around Lightning's restore of a checkpoint written on the last batch of an epoch.

Lightning 2.6 mis-restores one checkpoint position: a step checkpoint
(``ModelCheckpoint(every_n_train_steps=...)``) written in ``on_train_batch_end`` of an epoch's
*last* batch, before that epoch's validation and ``on_train_epoch_end``. Its ``FitLoop.reset``
sees "restarted on train batch end, last batch" and counts the epoch as processed and completed
at once, so the resumed run

- skips the epoch's validation (its metrics, ``best.ckpt``, and the random number the
  validation loader draws, which shifts every later shuffle, augmentation and dropout),
- skips the epoch's ``on_train_epoch_end`` hooks (the epoch's ``last.ckpt`` included),
- and continues the *finished* epoch's loader iterator as the next epoch, which yields nothing:
  a whole epoch of training steps is lost (a 12-step run ended at step 10 or 9), exit status 0.

:func:`fix_last_batch_checkpoint` rewrites the loop state of such a checkpoint, before Lightning
restores the loops, into the state Lightning restores correctly: the last batch completed and the
epoch's validation not yet run (restarted "mid evaluation" with no batch done). The resumed run
then validates, ends the epoch, and starts the next one as the uninterrupted run did.

It touches nothing else, and only the exact position above.
``tests/finetune/test_resume_positions.py`` fails if Lightning stops mis-restoring it (remove this
module then) or if the rewrite is wrong.
"""

from __future__ import annotations

from typing import Any


def _is_mid_epoch(progress: dict[str, Any]) -> bool:
    """The epoch progress of a run that had started an epoch and not finished it."""
    t = progress["total"]
    return t["started"] == t["ready"] and t["processed"] == t["started"] - 1 \
        and t["completed"] == t["processed"]


def _is_on_last_train_batch_end(progress: dict[str, Any]) -> bool:
    """Batch progress saved in ``on_train_batch_end`` (processed, not completed) of the last
    batch."""
    t = progress["total"]
    return bool(progress.get("is_last_batch")) and t["started"] == t["ready"] \
        and t["processed"] == t["started"] and t["completed"] == t["processed"] - 1


def fix_last_batch_checkpoint(checkpoint: dict[str, Any]) -> bool:
    """Rewrite, in place, the loop state of a checkpoint written on an epoch's last training batch
    so that Lightning resumes it exactly; return whether it was such a checkpoint.

    Call it before Lightning restores the loops (``LightningModule.on_load_checkpoint``).
    """
    fit = checkpoint.get("loops", {}).get("fit_loop")
    if not isinstance(fit, dict):
        return False
    try:
        epochs = fit["epoch_progress"]
        batches = fit["epoch_loop.batch_progress"]
        val = fit["epoch_loop.val_loop.batch_progress"]
        stepped = fit["epoch_loop.state_dict"]
    except KeyError:
        return False
    if not (_is_mid_epoch(epochs) and _is_on_last_train_batch_end(batches)):
        return False
    # The batch is done: ``on_train_batch_end`` has run (the save happened inside it).
    for part in ("total", "current"):
        batches[part]["completed"] = batches[part]["processed"]
    # The count Lightning raises right after ``on_train_batch_end`` (its restore does this
    # itself only for the "batch end" state we just replaced). The last batch of an epoch
    # always steps the optimizer, even with gradient accumulation.
    stepped["_batches_that_stepped"] = int(stepped.get("_batches_that_stepped", 0)) + 1
    # Validation of this epoch restarted before its first batch: Lightning then runs it in full
    # (and skips it cleanly when this epoch has no validation).
    done = int(val["total"]["completed"])
    val["total"].update(ready=done + 1, started=done + 1, processed=done, completed=done)
    val["current"].update(ready=1, started=1, processed=0, completed=0)
    val["is_last_batch"] = False
    return True


__all__ = ["fix_last_batch_checkpoint"]
