"""A run SIGKILLed at any point and resumed from the ``last.ckpt`` it left ends bit-identical to
the uninterrupted run, wherever that checkpoint was written: after the first, a middle or the last
batch of an epoch, at an epoch end, with the kill landing during validation or in the middle of a
save; with gradient accumulation, DataLoader workers and EMA.

Also the guard of :mod:`sapiens_kit.callbacks.resume_fix`: Lightning itself still mis-restores a
checkpoint written on an epoch's last batch (remove the workaround when that test fails).
"""

from __future__ import annotations

import json
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
from tests.helpers import REPO, assert_same, kill_during_save, run_cfg, write_mask_folder

# 6 images in batches of 2: 3 training batches per epoch, 3 epochs, dropout so the random
# streams matter, and a seed the resumed run does not reuse (it restores the saved streams).
COMMON = ("data.batch_size=2", "trainer.max_epochs=3", "seed=7", "model.lr=3e-3",
          "model.head.dropout=0.3", "model.warmup_steps=2")
#: validation after every 2nd batch (mid-epoch) and last.ckpt saved when validation ends
MID_EPOCH_VAL = ("+trainer.val_check_interval=2",
                 "+callbacks.last_checkpoint.save_on_train_epoch_end=false")
EVERY_STEP = ("callbacks.last_checkpoint.every_n_epochs=null",
              "callbacks.last_checkpoint.every_n_train_steps=1")

#: position -> (last.ckpt overrides, where the process is killed, (epoch, step) of the
#: ``last.ckpt`` it leaves without accumulation). A kill "at (e, b)" happens when training batch
#: b of epoch e starts; "val" when epoch 1's validation starts (after the step checkpoint of its
#: last batch); "save" half-way through the 5th write of last.ckpt.
POSITIONS: dict[str, tuple[tuple[str, ...], Any, tuple[int, int]]] = {
    "first-batch": (EVERY_STEP, (1, 1), (1, 4)),
    "middle-batch": (EVERY_STEP, (1, 2), (1, 5)),
    # the case: a step checkpoint on an epoch's last batch (Lightning mis-restores it,
    # see sapiens_kit.callbacks.resume_fix), killed in the next epoch
    "last-batch": (EVERY_STEP, (2, 0), (1, 6)),
    "epoch-end": ((), (2, 1), (1, 6)),
    "during-validation": (EVERY_STEP, "val", (1, 6)),
    "during-save": (EVERY_STEP, "save", (1, 4)),
    # written in on_validation_end of a mid-epoch validation (after batch 1 of each epoch)
    "written-during-validation": (MID_EPOCH_VAL, (1, 2), (1, 5)),
    # the last-batch position in an epoch that has no validation (validation every 2nd epoch)
    "last-batch-no-validation": (EVERY_STEP, (1, 0), (0, 3)),
    # the last-batch position in a run limited by trainer.max_steps (ends in epoch 2)
    "last-batch-max-steps": (EVERY_STEP, (2, 0), (1, 6)),
}
#: overrides of a position that change the training itself (shared with the uninterrupted run)
TRAINING: dict[str, tuple[str, ...]] = {
    "written-during-validation": MID_EPOCH_VAL[:1],
    "last-batch-no-validation": ("trainer.check_val_every_n_epoch=2",),
    "last-batch-max-steps": ("trainer.max_steps=7",),
}
VARIANTS = {
    "plain": (),
    "accumulate": ("trainer.accumulate_grad_batches=2",),
    "workers": ("data.num_workers=2",),
    "ema": ("callbacks=ema", "callbacks.ema.decay=0.7"),
    # all three at once: with "plain", every position sees each of them on and off
    "all": ("trainer.accumulate_grad_batches=2", "data.num_workers=2", "callbacks=ema",
            "callbacks.ema.decay=0.7"),
}
#: checkpoint keys that must be bit-identical (EMA adds the last two)
KEYS = ("epoch", "global_step", "state_dict", "optimizer_states", "lr_schedulers",
        "current_model_state", "averaging_state")


class KillAt(L.Callback):
    """SIGKILLs its own process (no cleanup runs) when training batch ``batch`` of epoch
    ``epoch`` starts, or, with ``val=True``, validation batch ``batch`` of that epoch."""

    def __init__(self, epoch: int, batch: int, val: bool = False) -> None:
        self.epoch, self.batch, self.val = epoch, batch, val

    def _maybe_kill(self, trainer: L.Trainer, batch_idx: int) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if not self.val:
            self._maybe_kill(trainer, batch_idx)

    def on_validation_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                  batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.val and not trainer.sanity_checking:
            self._maybe_kill(trainer, batch_idx)


def child(root: str, out: str, position: str, overrides: list[str]) -> None:
    """Entry point of the killed training process."""
    _, kill, _ = POSITIONS[position]
    extra: tuple[str, ...] = ()
    if kill == "save":
        kill_during_save(nth=5)
    else:
        epoch, batch, val = (1, 0, True) if kill == "val" else (*kill, False)
        extra = (f"+callbacks.kill._target_={__name__}.KillAt", f"+callbacks.kill.epoch={epoch}",
                 f"+callbacks.kill.batch={batch}", f"+callbacks.kill.val={val}")
    train(run_cfg(Path(root), Path(out), *overrides, *extra))


def run_killed(root: Path, out: Path, position: str, overrides: tuple[str, ...]) -> None:
    """Train in a subprocess that SIGKILLs itself at ``position``."""
    code = (f"from {__name__} import child; "
            f"child({str(root)!r}, {str(out)!r}, {position!r}, {json.dumps(list(overrides))})")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def best_score(ckpt: dict[str, Any]) -> Any:
    """The monitored metric's best value and the latest value, from best.ckpt's callback state."""
    return sorted((k, v.get("best_model_score"), v.get("current_score"))
                  for k, v in ckpt.get("callbacks", {}).items()
                  if "best_model_score" in v and "'best'" in k)


def assert_same_run(full: Path, resumed: Path, full_metrics: dict[str, float],
                    resumed_metrics: dict[str, float]) -> None:
    """The two runs' final checkpoints and metrics are bit-identical, and the resumed run leaves
    exactly last.ckpt and best.ckpt (no ``best-v1.ckpt``, no partial file)."""
    assert sorted(p.name for p in (resumed / "checkpoints").iterdir()) == ["best.ckpt",
                                                                           "last.ckpt"]
    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    for key in KEYS:
        assert (key in a) == (key in b), key
        if key in a:
            assert_same(a[key], b[key], key)
    assert_same(best_score(a), best_score(b), "best score")
    assert resumed_metrics == full_metrics
    best_a = torch.load(full / "checkpoints" / "best.ckpt", weights_only=True)
    best_b = torch.load(resumed / "checkpoints" / "best.ckpt", weights_only=True)
    assert (best_a["epoch"], best_a["global_step"]) == (best_b["epoch"], best_b["global_step"])
    assert_same(best_a["state_dict"], best_b["state_dict"], "best.state_dict")


_FULL: dict[tuple[str, ...], tuple[Path, dict[str, float]]] = {}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mask_folder(tmp_path_factory.mktemp("seg") / "seg", n=6)


def uninterrupted(root: Path, tmp: pytest.TempPathFactory,
                  overrides: tuple[str, ...]) -> tuple[Path, dict[str, float]]:
    """One uninterrupted run per set of overrides, kept for the module."""
    if overrides not in _FULL:
        out = tmp.mktemp("full") / "out"
        metrics, _ = train(run_cfg(root, out, *COMMON, *overrides))
        _FULL[overrides] = out, metrics
    return _FULL[overrides]


#: every position plain and with all variants on; each variant alone on the last-batch position
CASES = [pytest.param(position, variant, id=position if variant == "plain" else
                      f"{position}-{variant}")
         for position in POSITIONS for variant in ("plain", "all")] + [
    pytest.param("last-batch", variant, id=f"last-batch-{variant}")
    for variant in ("accumulate", "workers", "ema")
]


@pytest.mark.slow
@pytest.mark.parametrize(("position", "variant"), CASES)
def test_sigkill_at_any_checkpoint_position_resumes_bit_identical(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, data_root: Path, position: str,
    variant: str,
) -> None:
    ckpt_overrides, _, (epoch, step) = POSITIONS[position]
    # e.g. mid-epoch validation changes the run (its loader draws from the global generator)
    trains = TRAINING.get(position, ())
    overrides = tuple(dict.fromkeys((*COMMON, *VARIANTS[variant], *ckpt_overrides, *trains)))
    # the same checkpoint settings: when last.ckpt is written decides its final "epoch" field
    full, full_metrics = uninterrupted(data_root, tmp_path_factory, overrides[len(COMMON):])
    broken = tmp_path / "broken"
    run_killed(data_root, broken, position, overrides)

    last = broken / "checkpoints" / "last.ckpt"
    interrupted = torch.load(last, weights_only=True)
    if "trainer.accumulate_grad_batches=2" not in VARIANTS[variant]:  # the position it names
        assert (interrupted["epoch"], interrupted["global_step"]) == (epoch, step)
    metrics, _ = train(run_cfg(data_root, broken, *overrides, f"ckpt_path={last}"))
    assert_same_run(full, broken, full_metrics, metrics)


class KillJobAt(L.Callback):
    """On rank 0, SIGKILLs the whole job (every rank, as a cluster scheduler does) when training
    batch ``batch`` of epoch ``epoch`` starts. The job runs in its own process group."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if trainer.global_rank == 0 and (trainer.current_epoch, batch_idx) == (self.epoch,
                                                                               self.batch):
            os.killpg(os.getpgrp(), signal.SIGKILL)


def run_job(args: list[str], cwd: Path, killed: bool = False) -> None:
    """``python -m sapiens_kit.train <args>`` in its own process group (all its ranks)."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "sapiens_kit.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, start_new_session=True)
    assert proc.returncode == (-signal.SIGKILL if killed else 0), proc.stderr[-4000:]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_process_job_killed_after_a_last_batch_checkpoint_resumes_bit_identical(
    tmp_path: Path, strategy: str
) -> None:
    """Two CPU ranks (DDP, or FSDP with full checkpoints), 2 steps per epoch; the whole job is
    SIGKILLed right after the step checkpoint of epoch 1's last batch and resumed with
    ``ckpt_path=``: weights, optimizer, scheduler, epoch and step equal the uninterrupted job's."""
    from tests.finetune.test_fsdp import fsdp_args

    root = write_mask_folder(tmp_path / "seg", n=8)
    extra = ("data.batch_size=2", "trainer.max_epochs=3", "seed=7", "model.head.dropout=0.3",
             "test_after_fit=false", "num_overlays=0", *EVERY_STEP)

    def args(out: Path, *more: str) -> list[str]:
        if strategy == "fsdp":
            return fsdp_args(root, out, *extra, *more)
        return ["task=seg", "backbone=sapiens_test", "data=fake_seg", f"data.root={root}",
                "img_size=[32,32]", "data.augment=false", "trainer=ddp_sim",
                "model.warmup_steps=1", "model.head.deconv_channels=[8,8,8]",
                "model.head.conv_channels=[8,8,8]", "+trainer.enable_progress_bar=false",
                *extra, *more, f"hydra.run.dir={out}"]

    full, broken = tmp_path / "full", tmp_path / "broken"
    run_job(args(full), tmp_path)
    run_job(args(broken, f"+callbacks.kill._target_={__name__}.KillJobAt",
                 "+callbacks.kill.epoch=2", "+callbacks.kill.batch=0"), tmp_path, killed=True)
    last = broken / "checkpoints" / "last.ckpt"
    interrupted = torch.load(last, weights_only=True)
    assert (interrupted["epoch"], interrupted["global_step"]) == (1, 4)
    assert interrupted["loops"]["fit_loop"]["epoch_loop.batch_progress"]["is_last_batch"]
    run_job(args(broken, f"ckpt_path={last}"), tmp_path)

    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) == (2, 6)
    for key in ("state_dict", "optimizer_states", "lr_schedulers"):
        assert_same(a[key], b[key], key)
    assert json.loads((full / "metrics.json").read_text()) == json.loads(
        (broken / "metrics.json").read_text())


class CrashAt(L.Callback):
    """Raises when training batch ``batch`` of epoch ``epoch`` starts (the in-process stand-in
    for a kill: what is on disk is the same)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            raise RuntimeError("simulated crash")


def test_lightning_still_needs_the_last_batch_workaround(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step checkpoint on epoch 0's last batch (2 batches per epoch): without
    ``fix_last_batch_checkpoint`` Lightning's resume silently loses training steps; with it the
    run ends bit-identical to the uninterrupted one.

    If the first half fails, Lightning restores this position correctly by itself: delete
    ``sapiens_kit.callbacks.resume_fix`` and its call in ``BaseTask.on_load_checkpoint``.
    """
    import shutil

    from sapiens_kit.callbacks import resume_fix

    root = write_mask_folder(tmp_path / "seg", n=4)
    common = ("data.batch_size=2", "trainer.max_epochs=2", "seed=7", "model.head.dropout=0.3",
              *EVERY_STEP)
    full, broken = tmp_path / "full", tmp_path / "broken"
    full_metrics, _ = train(run_cfg(root, full, *common))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(run_cfg(root, broken, *common, f"+callbacks.crash._target_={__name__}.CrashAt",
                      "+callbacks.crash.epoch=1", "+callbacks.crash.batch=0"))
    last = broken / "checkpoints" / "last.ckpt"
    interrupted = torch.load(last, weights_only=True)
    assert (interrupted["epoch"], interrupted["global_step"]) == (0, 2)
    assert interrupted["loops"]["fit_loop"]["epoch_loop.batch_progress"]["is_last_batch"]
    saved = tmp_path / "interrupted"
    shutil.copytree(last.parent, saved)

    # Lightning alone: the fix is switched off
    with monkeypatch.context() as m:
        m.setattr(resume_fix, "fix_last_batch_checkpoint", lambda checkpoint: False)
        train(run_cfg(root, broken, *common, f"ckpt_path={last}"))
    alone = torch.load(last, weights_only=True)
    assert alone["global_step"] < 4, "Lightning now resumes this position itself: drop the fix"

    shutil.rmtree(last.parent)
    shutil.copytree(saved, last.parent)
    metrics, _ = train(run_cfg(root, broken, *common, f"ckpt_path={last}"))
    assert_same_run(full, broken, full_metrics, metrics)
