"""A SIGKILL mid-epoch or mid-save never costs the last good checkpoint, and resuming from what is
on disk reaches the same final weights as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from sapiens_kit.train import train
from sapiens_kit.utils.checkpoint_io import PARTIAL_SUFFIX, AtomicCheckpointIO
from tests.helpers import REPO, assert_same, kill_during_save, run_cfg, write_mask_folder

COMMON = ("data.batch_size=1", "trainer.max_epochs=3", "model.lr=3e-3", "model.head.dropout=0.3")


class KillAt(L.Callback):
    """SIGKILLs its own process when batch ``batch`` of epoch ``epoch`` starts (no cleanup runs)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            os.kill(os.getpid(), signal.SIGKILL)


def child(root: str, out: str, mode: str) -> None:
    """Entry point of the killed training process."""
    extra: tuple[str, ...] = ()
    if mode == "epoch":
        extra = (f"+callbacks.kill._target_={__name__}.KillAt",
                 "+callbacks.kill.epoch=2", "+callbacks.kill.batch=1")
    else:
        kill_during_save(nth=2)
    train(run_cfg(Path(root), Path(out), *COMMON, *extra))


def run_killed(root: Path, out: Path, mode: str) -> None:
    code = (f"from {__name__} import child; "
            f"child({str(root)!r}, {str(out)!r}, {mode!r})")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def test_atomic_save_keeps_the_old_file_until_the_new_one_is_complete(tmp_path: Path) -> None:
    io_ = AtomicCheckpointIO()
    target = tmp_path / "ckpts" / "last.ckpt"
    io_.save_checkpoint({"step": 1, "w": torch.ones(3)}, target)

    class Boom(Exception):
        pass

    class Bad:
        def __reduce__(self) -> Any:
            raise Boom

    with pytest.raises(Boom):
        io_.save_checkpoint({"step": 2, "bad": Bad()}, target)
    assert io_.load_checkpoint(target, weights_only=True)["step"] == 1
    assert list(target.parent.iterdir()) == [target]  # the partial file was removed
    (target.parent / f".last.ckpt.x{PARTIAL_SUFFIX}").write_bytes(b"junk from a killed save")
    io_.save_checkpoint({"step": 3}, target)
    assert io_.load_checkpoint(target, weights_only=True)["step"] == 3
    assert list(target.parent.iterdir()) == [target]


def test_trainer_config_uses_the_atomic_plugin(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    cfg = run_cfg(tmp_path, tmp_path / "out")
    trainer = instantiate(cfg.trainer)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data root, output folder) of one uninterrupted run shared by the kill tests."""
    tmp = tmp_path_factory.mktemp("full")
    root = write_mask_folder(tmp / "seg", n=4)
    train(run_cfg(root, tmp / "out", *COMMON))
    return root, tmp / "out"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["epoch", "save"])
def test_sigkill_then_resume_reaches_the_uninterrupted_weights(
    tmp_path: Path, mode: str, uninterrupted: tuple[Path, Path]
) -> None:
    root, full = uninterrupted
    broken = tmp_path / "broken"
    run_killed(root, broken, mode)

    ckpts = broken / "checkpoints"
    on_disk = sorted(p.name for p in ckpts.glob("*.ckpt"))
    assert on_disk == ["best.ckpt", "last.ckpt"]
    for p in ckpts.glob("*.ckpt"):  # every checkpoint on disk is complete and loads
        torch.load(p, weights_only=True)
    last = torch.load(ckpts / "last.ckpt", weights_only=True)
    # killed in epoch 2: epoch 1 was saved; killed while saving epoch 1: epoch 0 survives intact
    assert last["epoch"] == (1 if mode == "epoch" else 0)
    if mode == "save":
        assert list(ckpts.glob(f"*{PARTIAL_SUFFIX}")), "the kill should have left a partial file"

    train(run_cfg(root, broken, *COMMON, f"ckpt_path={ckpts / 'last.ckpt'}"))
    assert not list(ckpts.glob(f"*{PARTIAL_SUFFIX}"))
    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(ckpts / "last.ckpt", weights_only=True)
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) == (2, 12)
    for key in ("state_dict", "optimizer_states", "lr_schedulers"):
        assert_same(a[key], b[key], key)
