"""``trainer=fsdp`` run for real: two CPU processes (gloo) through the command line.

Lightning's FSDP strategy is GPU-only: it refuses ``accelerator=cpu``, and it hands
``device_id=None`` to torch FSDP, which then refuses a CPU-only machine. ``CPUFSDPStrategy``
lifts exactly those two things; everything else (the preset's per-block wrap policy, sharding,
gradient clipping through FSDP, full and sharded checkpoints, re-validation after ``fit``,
rank-0 outputs) is the code a GPU run executes. For ``bf16-mixed``, ``CPUFSDPPrecision`` swaps
Lightning's CUDA-only autocast for the CPU one; FSDP's own mixed precision (bf16 parameters,
buffers and gradient reduction) is Lightning's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import FSDPPrecision
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.strategies import fsdp as lightning_fsdp
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel

from sapiens_kit.tasks import SegmentationTask
from sapiens_kit.train import train
from sapiens_kit.utils.cli import UserError, load_task
from tests.helpers import REPO, run_cfg, write_mask_folder

# Two training processes per run: run with `pytest -m slow`.
pytestmark = pytest.mark.slow


class CPUFSDPStrategy(FSDPStrategy):
    """Lightning's FSDP strategy with the CPU device handed to torch FSDP (test-only)."""

    def _setup_model(self, model: nn.Module) -> nn.Module:
        if any(isinstance(m, FullyShardedDataParallel) for m in model.modules()):
            self.kwargs.pop("auto_wrap_policy", None)  # as Lightning does for wrapped models
        model = FullyShardedDataParallel(
            module=model, cpu_offload=self.cpu_offload,
            mixed_precision=self.mixed_precision_config,
            sharding_strategy=self.sharding_strategy, device_id=torch.device("cpu"),
            **self.kwargs,
        )
        lightning_fsdp._setup_activation_checkpointing(model, self._activation_checkpointing_kwargs)
        return model


class CPUFSDPPrecision(FSDPPrecision):
    """Lightning's FSDP precision with CPU autocast under ``*-mixed`` (test-only)."""

    def forward_context(self) -> Any:
        if self.precision == "bf16-mixed":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return super().forward_context()


class RecordSharding(L.Callback):
    """Writes ``rank<r>.json``: which modules FSDP wrapped and how many parameters this rank
    holds, once training starts."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        units = [n for n, m in trainer.strategy.model.named_modules()
                 if isinstance(m, FullyShardedDataParallel)]
        local = sum(p.numel() for p in trainer.strategy.model.parameters())
        info = {"units": units, "local_params": local, "world_size": trainer.world_size}
        (self.dirpath / f"rank{trainer.global_rank}.json").write_text(json.dumps(info))


# Same data and steps as the DDP test: 4 images = 2 per rank x 2 ranks = 1 full-set step, SGD.
# A small clipping threshold makes every step clip, so FSDP's sharded norm must equal the
# single-process one.
COMMON = ("model.head.dropout=0", "model.lr=1e-2", "model.optimizer=sgd", "trainer.max_epochs=2",
          "trainer.gradient_clip_val=0.05")


def fsdp_args(root: Path, out: Path, *extra: str, precision: str = "32-true") -> list[str]:
    return [
        "task=seg", "backbone=sapiens_test", "data=fake_seg", f"data.root={root}",
        "img_size=[32,32]", "data.augment=false", "data.batch_size=2", "trainer=fsdp",
        "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=null",
        "trainer.plugins=[{_target_: sapiens_kit.utils.checkpoint_io.AtomicCheckpointIO}, "
        "{_target_: " + __name__ + ".CPUFSDPPrecision, precision: " + precision + "}]",
        f"trainer.strategy._target_={__name__}.CPUFSDPStrategy",
        "model.warmup_steps=1", "model.head.deconv_channels=[8,8,8]",
        "model.head.conv_channels=[8,8,8]", "num_overlays=1",
        "+trainer.enable_progress_bar=false", *COMMON, *extra, f"hydra.run.dir={out}",
    ]


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "sapiens_kit.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def assert_same_weights(got: dict[str, Any], ref: dict[str, Any], atol: float = 1e-7) -> None:
    assert got.keys() == ref.keys()
    for name, value in ref.items():
        assert got[name].dtype == torch.float32, name  # fp32 master weights in the checkpoint
        torch.testing.assert_close(got[name], value, atol=atol, rtol=0, msg=name)


# bf16: FSDP's run ends ~1e-8 from one process under bf16 autocast, while bf16 and fp32 runs end
# ~1e-6 apart, so the tolerance below tells FSDP's bf16 handling from plain fp32. The bf16 run
# also recomputes blocks and head stages in backward (the 2B full fine-tuning setting), which
# must not change the result.
@pytest.mark.parametrize(("precision", "checkpointing"), [("32-true", False),
                                                          ("bf16-mixed", True)])
def test_two_process_fsdp_matches_one_process(tmp_path: Path, precision: str,
                                              checkpointing: bool) -> None:
    root = write_mask_folder(tmp_path / "seg", n=4)
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    out = tmp_path / "run"
    ckpt = (["model.grad_checkpointing=true", "model.head_checkpointing=true"] if checkpointing
            else [])
    run_cli(fsdp_args(root, out, f"+callbacks.shards._target_={__name__}."
                      "RecordSharding", f"+callbacks.shards.dirpath={dumps}", *ckpt,
                      precision=precision), tmp_path)

    # one FSDP unit per transformer block plus the root, and each rank holds half the weights
    ranks = [json.loads((dumps / f"rank{r}.json").read_text()) for r in (0, 1)]
    blocks = len(SegmentationTask(backbone="sapiens_test", img_size=(32, 32), num_classes=3,
                                  head={"deconv_channels": [8] * 3, "conv_channels": [8] * 3})
                 .backbone.blocks)
    assert ranks[0]["units"] == [""] + [f"_fsdp_wrapped_module.backbone.blocks.{i}"
                                       for i in range(blocks)]
    full = sum(p.numel() for p in SegmentationTask(
        backbone="sapiens_test", img_size=(32, 32), num_classes=3,
        head={"deconv_channels": [8] * 3, "conv_channels": [8] * 3}).parameters())
    assert ranks[0]["local_params"] < 0.55 * full and ranks[1]["local_params"] < 0.55 * full

    single, _ = train(run_cfg(root, tmp_path / "single", "data.batch_size=4",
                              f"trainer.precision={precision}", *COMMON))
    ref = torch.load(tmp_path / "single" / "checkpoints" / "last.ckpt", weights_only=True)
    got = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert_same_weights(got["state_dict"], ref["state_dict"])  # one plain, gathered file
    # re-validation of the best checkpoint after fit (a fresh model under FSDP) and rank-0 files
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("val/mIoU", "val/mAcc", "val/aAcc", "val/loss"):
        assert abs(metrics[name] - single[name]) < 1e-5, name
    assert [p.name for p in (out / "csv").iterdir()] == ["version_0"]
    assert sorted(p.name for p in (out / "predictions").iterdir()) == [
        "img0_mask.png", "img0_overlay.jpg"]
    task = load_task(out / "checkpoints" / "best.ckpt", task="seg")  # what evaluate/export use
    assert isinstance(task, SegmentationTask)


@pytest.mark.slow
def test_sharded_fsdp_checkpoints_resume_and_consolidate(tmp_path: Path) -> None:
    """``state_dict_type=sharded``: resuming the per-rank shards continues the run exactly, and
    the folder, refused by single-file tools with the fix in the message, consolidates into a
    file they accept."""
    root = write_mask_folder(tmp_path / "seg", n=4)
    sharded = "trainer.strategy.state_dict_type=sharded"
    run_cli(fsdp_args(root, tmp_path / "full", "test_after_fit=false"), tmp_path)
    run_cli(fsdp_args(root, tmp_path / "part", sharded, "trainer.max_epochs=1",
                      "test_after_fit=false", "num_overlays=0"), tmp_path)
    first = tmp_path / "part" / "checkpoints" / "last.ckpt"
    assert first.is_dir()
    run_cli(fsdp_args(root, tmp_path / "resumed", sharded, f"+ckpt_path={first}"), tmp_path)

    last = tmp_path / "resumed" / "checkpoints" / "last.ckpt"
    with pytest.raises(UserError, match="consolidate_checkpoint"):
        load_task(last, task="seg")
    subprocess.run([sys.executable, "-m", "lightning.pytorch.utilities.consolidate_checkpoint",
                    str(last)], check=True, capture_output=True)
    merged = torch.load(f"{last}.consolidated", weights_only=True)
    ref = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=True)
    assert merged["global_step"] == ref["global_step"] == 2
    assert_same_weights(merged["state_dict"], ref["state_dict"])
    assert isinstance(load_task(f"{last}.consolidated", task="seg"), SegmentationTask)
