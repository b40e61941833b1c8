"""``ckpt_path=`` resumes a crashed run exactly: weights, EMA, optimizer, scheduler, epoch/step,
data order, augmentation and dropout all continue as if the run had not stopped, from an
end-of-epoch checkpoint or from one taken in the middle of an epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from sapiens_kit.train import train
from tests.helpers import assert_same, run_cfg, write_mask_folder


class CrashAtEpoch(L.Callback):
    """Simulates a killed job: raises when epoch ``epoch`` starts (its predecessor is saved)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


class CrashAtBatch(L.Callback):
    """Raises when batch ``batch`` of epoch ``epoch`` starts (the batches before it trained)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            raise RuntimeError("simulated crash")


class RecordBatches(L.Callback):
    """Keeps (epoch, file, image checksum) of every training sample the run trained on."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str, float]] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self.seen += [(trainer.current_epoch, m["path"], float(img.double().sum()))
                      for m, img in zip(batch["meta"], batch["image"], strict=True)]


def test_resume_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    root = write_mask_folder(tmp_path / "seg", n=4)
    # Shuffled batches of 1, dropout, accumulation, warm-up + poly, EMA, and a frozen backbone
    # that unfreezes at epoch 1: every piece of state a resume has to carry over.
    common = ("data.batch_size=1", "trainer.max_epochs=3", "trainer.accumulate_grad_batches=2",
              "model.warmup_steps=2", "model.head.dropout=0.3", "model.freeze_backbone=true",
              "model.unfreeze_at_epoch=1", "callbacks=ema", "callbacks.ema.decay=0.7",
              "model.lr=3e-3")
    full, broken = tmp_path / "full", tmp_path / "broken"
    train(run_cfg(root, full, *common))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(run_cfg(root, broken, *common, "+callbacks.crash._target_="
                      f"{__name__}.CrashAtEpoch", "+callbacks.crash.epoch=2"))
    interrupted = torch.load(broken / "checkpoints" / "last.ckpt", weights_only=True)
    assert (interrupted["epoch"], interrupted["global_step"]) == (1, 4)
    train(run_cfg(root, broken, *common, f"ckpt_path={broken / 'checkpoints' / 'last.ckpt'}"))

    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(broken / "checkpoints" / "last.ckpt", weights_only=True)
    assert (b["epoch"], b["global_step"]) == (a["epoch"], a["global_step"]) == (2, 6)
    for key in ("state_dict", "current_model_state", "averaging_state", "optimizer_states",
                "lr_schedulers", "loops"):
        assert_same(a[key], b[key], key)
    # the run really trained the backbone after unfreezing, and EMA differs from the live weights
    name = "backbone.blocks.0.attn.qkv.weight"
    assert not torch.equal(a["current_model_state"][name], interrupted["current_model_state"][name])
    assert not torch.equal(a["state_dict"]["head.conv_seg.weight"],
                           a["current_model_state"]["head.conv_seg.weight"])


# With 2 DataLoader worker processes the run is slow (three runs that start workers).
@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_mid_epoch_resume_with_augmentation_reproduces_the_uninterrupted_run(
    tmp_path: Path, workers: int
) -> None:
    """A checkpoint after every optimizer step, a crash in the middle of epoch 1, and a resume:
    the rest of the epoch sees the same files with the same augmentation, and the run ends
    bit-identical to one that never stopped (with and without worker processes)."""
    root = write_mask_folder(tmp_path / "seg", n=6)
    common = ("data.batch_size=1", "data.augment=true", f"data.num_workers={workers}",
              "trainer.max_epochs=2", "trainer.accumulate_grad_batches=2",
              "model.head.dropout=0.3", "model.lr=3e-3", "model.warmup_steps=2",
              "callbacks.last_checkpoint.every_n_train_steps=1",
              "callbacks.last_checkpoint.every_n_epochs=null")
    full, broken = tmp_path / "full", tmp_path / "broken"
    _, objs = train(run_cfg(root, full, *common, "+callbacks.rec._target_="
                            f"{__name__}.RecordBatches"))
    seen_full = next(c for c in objs["trainer"].callbacks if isinstance(c, RecordBatches)).seen
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(run_cfg(root, broken, *common, "+callbacks.crash._target_="
                      f"{__name__}.CrashAtBatch", "+callbacks.crash.epoch=1",
                      "+callbacks.crash.batch=5"))
    interrupted = torch.load(broken / "checkpoints" / "last.ckpt", weights_only=True)
    assert (interrupted["epoch"], interrupted["global_step"]) == (1, 5)  # 2 of epoch 1's steps
    _, objs = train(run_cfg(root, broken, *common, "+callbacks.rec._target_="
                            f"{__name__}.RecordBatches",
                            f"ckpt_path={broken / 'checkpoints' / 'last.ckpt'}"))
    seen_resumed = next(c for c in objs["trainer"].callbacks
                        if isinstance(c, RecordBatches)).seen
    assert seen_resumed == seen_full[-2:]  # the last two samples, identically augmented

    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(broken / "checkpoints" / "last.ckpt", weights_only=True)
    assert (b["epoch"], b["global_step"]) == (a["epoch"], a["global_step"]) == (1, 6)
    for key in ("state_dict", "optimizer_states", "lr_schedulers"):
        assert_same(a[key], b[key], key)
