"""Two-process DDP on CPU (``trainer=ddp_sim``, gloo) through the real command line: the ranks
end with identical weights, the result equals one process over the same data, and the run writes
one output folder (one logger, one metrics file, checkpoints from rank 0)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from sapiens_kit.train import train
from tests.helpers import REPO, compose_cfg, run_cfg, write_mask_folder

# Two training processes plus a one-process reference per test: run with `pytest -m slow`.
pytestmark = pytest.mark.slow


class DumpWeights(L.Callback):
    """Writes ``rank<r>.pt`` (weights and synced metrics) when training ends, on every rank."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.start: torch.Tensor | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = pl_module.backbone.blocks[0].attn.qkv.weight.detach().clone()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        torch.save({"state_dict": pl_module.state_dict(), "metrics": metrics,
                    "world_size": trainer.world_size, "start": self.start},
                   self.dirpath / f"rank{trainer.global_rank}.pt")


# Full-set steps (4 images = 2 per rank x 2 ranks = 1 batch of 4) make the gradients equal;
# SGD, because Adam turns the rounding noise in the gradients of biases that an InstanceNorm
# cancels (exactly zero in theory) into lr-sized steps of random sign. Freeze + unfreeze at
# epoch 1 checks that DDP is re-wrapped so the unfrozen backbone is synced.
COMMON = ("model.head.dropout=0", "model.lr=1e-2", "model.optimizer=sgd", "trainer.max_epochs=2",
          "model.freeze_backbone=true", "model.unfreeze_at_epoch=1", "callbacks=ema",
          "callbacks.ema.decay=0.5")


def test_two_process_ddp_matches_one_process(tmp_path: Path) -> None:
    root = tmp_path / "seg"
    write_mask_folder(root / "train", n=4)
    # 5 validation images on 2 ranks: 3 + 2, none counted twice (Lightning's default sampler
    # would repeat one to even the ranks out, and the metrics would differ from one process).
    write_mask_folder(root / "val", n=5, seed=1)
    shutil.copy(root / "train" / "classes.json", root / "classes.json")
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    out = tmp_path / "run"
    args = [
        "task=seg", "backbone=sapiens_test", "data=fake_seg", f"data.root={root}",
        "img_size=[32,32]", "data.augment=false", "data.batch_size=2", "trainer=ddp_sim",
        "model.warmup_steps=1", "model.head.deconv_channels=[8,8,8]",
        "model.head.conv_channels=[8,8,8]", "test_after_fit=false", "num_overlays=1",
        "+trainer.enable_progress_bar=false", *COMMON,
        f"+callbacks.dump._target_={__name__}.DumpWeights",
        f"+callbacks.dump.dirpath={dumps}", f"hydra.run.dir={out}",
    ]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "sapiens_kit.train", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]

    r0, r1 = (torch.load(dumps / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world_size"] == r1["world_size"] == 2
    for name, value in r0["state_dict"].items():
        assert torch.equal(value, r1["state_dict"][name]), name

    single, _ = train(run_cfg(root, tmp_path / "single", "data.batch_size=4", *COMMON))
    ref = torch.load(tmp_path / "single" / "checkpoints" / "last.ckpt", weights_only=True)
    ddp_ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    for key in ("state_dict", "current_model_state"):
        for name, value in ref[key].items():
            torch.testing.assert_close(ddp_ckpt[key][name], value, atol=2e-6, rtol=1e-4,
                                       msg=f"{key}.{name}")
    # the backbone did train after unfreezing (so its gradients had to be all-reduced)
    qkv = "backbone.blocks.0.attn.qkv.weight"
    assert not torch.allclose(ddp_ckpt["current_model_state"][qkv], r0["start"], atol=1e-6)
    for name in ("val/mIoU", "val/mAcc", "val/aAcc"):  # torchmetrics states are all-reduced
        assert abs(r0["metrics"][name] - single[name]) < 1e-6, name
        assert r0["metrics"][name] == r1["metrics"][name]

    # One run folder: nothing written to the working directory, one logger version, rank 0's
    # metrics and overlays, and rank 1 only adds its own log file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dumps", "run", "seg", "single"]
    assert sorted(p.name for p in out.iterdir()) == [
        ".hydra", "checkpoints", "csv", "metrics.json", "predictions", "train.log",
        "train_ddp_process_1.log"]
    assert [p.name for p in (out / "csv").iterdir()] == ["version_0"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert abs(metrics["val/mIoU"] - single["val/mIoU"]) < 1e-6


def test_two_process_pose_evaluation_equals_one_process(tmp_path: Path) -> None:
    """COCO keypoint evaluation gathers every rank's detections once: with the weights held
    fixed (lr 0), the 2-rank results file and AP equal a one-process run's."""
    common = ["task=pose", "backbone=sapiens_test", "data=demo_pose", "img_size=[64,48]",
              "data.augment=false", "+data.val_batch_size=1", "model.lr=0",
              "trainer.max_epochs=1",
              "trainer.check_val_every_n_epoch=1", "test_after_fit=false", "num_overlays=0",
              "+trainer.enable_progress_bar=false"]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"
    proc = subprocess.run([sys.executable, "-m", "sapiens_kit.train", *common, "trainer=ddp_sim",
                           "data.batch_size=2", f"hydra.run.dir={out}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # Every rank computes with one thread; the same here, so kernels sum in the same order (an
    # untrained model's flat heatmaps turn rounding differences into whole-pixel jumps).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single, _ = train(compose_cfg(*common, "trainer=cpu", "data.batch_size=4",
                                      out=tmp_path / "single"))
    finally:
        torch.set_num_threads(threads)

    def results(run: Path) -> tuple[list[int], torch.Tensor]:
        """Image ids and (score, keypoints) rows, in image then mean-x order."""
        rows = json.loads((run / "val_results.json").read_text())
        rows.sort(key=lambda r: (r["image_id"], round(sum(r["keypoints"][0::3]) / 17)))
        return ([r["image_id"] for r in rows],
                torch.tensor([[r["score"], *r["keypoints"]] for r in rows], dtype=torch.float64))

    (ids, got), (ref_ids, ref) = results(out), results(tmp_path / "single")
    assert len(ref_ids) == 12 and ids == ref_ids  # every person once, none repeated
    # one crop per forward on every rank, so the numerics are those of the one process
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val/AP"] == pytest.approx(single["val/AP"], abs=1e-9)
