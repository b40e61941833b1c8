"""Depth and normal tasks train, validate and predict end to end through the Hydra configs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from sapiens_kit.data.collate import collate
from sapiens_kit.tasks import DepthTask, NormalTask
from sapiens_kit.train import train
from sapiens_kit.utils.config import CONFIG_DIR
from tests.helpers import compose_cfg

METRICS = {
    "depth": ["val/rmse", "val/abs_rel", "val/sq_rel", "val/rmse_log", "val/delta1",
              "val/delta2", "val/delta3"],
    "normal": ["val/mean_angular_error", "val/median_angular_error", "val/within_11_25",
               "val/within_22_5", "val/within_30"],
}


def _cfg(task: str, tmp_path: Path, *overrides: str):
    return compose_cfg(
            f"task={task}", "backbone=sapiens_test", f"paths.output_dir={tmp_path / 'out'}",
            f"data.cache_dir={tmp_path / 'cache'}", "data.demo_size=[4,2]",
            "data.demo_image_size=[40,30]", "img_size=[64,48]", "trainer.accelerator=cpu",
            *overrides,
    )


@pytest.mark.parametrize("task", ["depth", "normal"])
def test_default_config_is_the_official_recipe(task: str) -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"task={task}"])
    assert cfg.model._target_ == f"sapiens_kit.tasks.{task.capitalize()}Task"
    assert cfg.data._target_ == "sapiens_kit.data.DenseFolderDataModule"
    assert cfg.data.root is None and cfg.data.target == task
    assert cfg.model.patch_padding == (0 if task == "depth" else 2)
    assert cfg.mode == "min" and cfg.monitor == METRICS[task][0]
    assert cfg.model.allow_random_init  # the offline demo
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        folder = compose("train", overrides=[f"task={task}", f"data={task}_folder",
                                             "data.root=/x"])
    head = folder.model.head
    if task == "depth":
        assert list(head.deconv_channels) == [384] * 4 and list(head.conv_channels) == [384] * 2
    else:
        assert list(head.deconv_channels) == [768] * 3 and list(head.conv_channels) == [768] * 3
    assert list(folder.img_size) == [1024, 768]
    assert folder.model.allow_random_init is False  # real data: missing weights are an error


@pytest.mark.parametrize("task", ["depth", "normal"])
def test_fast_dev_run(task: str, tmp_path: Path) -> None:
    metrics, objects = train(_cfg(task, tmp_path, "debug=fdr"))
    assert np.isfinite(metrics["train/loss"])
    for key in METRICS[task]:
        assert np.isfinite(metrics[key]), key
    head = objects["model"].head
    assert len(head.deconv_layers) // 3 == (4 if task == "depth" else 3)


@pytest.mark.parametrize("task", ["depth", "normal"])
def test_short_run_with_predictions(task: str, tmp_path: Path) -> None:
    _, objects = train(_cfg(task, tmp_path, "trainer.max_epochs=1", "num_overlays=2"))
    out = tmp_path / "out"
    saved = json.loads((out / "metrics.json").read_text())
    assert all(key in saved for key in METRICS[task])
    assert (out / "checkpoints" / "best.ckpt").is_file()
    preds = sorted((out / "predictions").iterdir())
    assert [p.name for p in preds] == [f"val_000{i}_{task}.{s}" for i in (0, 1)
                                       for s in ("npy", "png")]
    array = np.load(preds[0])
    assert array.dtype == np.float32
    assert array.shape == ((40, 30) if task == "depth" else (40, 30, 3))
    if task == "normal":
        # Official inference normalisation n / (|n| + 1e-5): unit up to 1e-5 / |n|.
        norms = np.linalg.norm(array, axis=-1)
        assert (norms <= 1).all() and np.median(norms) > 0.9
    png = cv2.imread(str(preds[1]))
    assert png.shape == (40, 30, 3)
    fg = cv2.imread(str(objects["datamodule"].root / "val" / "mask" / "val_0000.png"), 0) > 0
    assert (png[~fg] == 0).all() and png[fg].any()
    reloaded = type(objects["model"]).load_from_checkpoint(out / "checkpoints" / "best.ckpt")
    assert reloaded.hparams.head == objects["model"].hparams.head


@pytest.mark.parametrize("task_cls", [DepthTask, NormalTask])
def test_predict_with_mask_folder(task_cls: type, tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "seg").mkdir()
    rng = np.random.default_rng(0)
    for i, size in enumerate([(50, 40), (30, 44)]):
        cv2.imwrite(str(tmp_path / "img" / f"p{i}.jpg"),
                    rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    mask = np.zeros((50, 40), np.uint8)
    mask[10:40, 10:30] = 3  # a seg label map: > 0 is foreground
    cv2.imwrite(str(tmp_path / "seg" / "p0_mask.png"), mask)
    task = task_cls(backbone="sapiens_test", img_size=(64, 48)).eval()
    ds = task.predict_dataset(sorted((tmp_path / "img").iterdir()), mask_dir=tmp_path / "seg")
    with torch.no_grad():
        preds = task.predict_step(collate([ds[0], ds[1]]), 0)
    written = task.save_predictions([preds], tmp_path / "pred")
    assert len(written) == 4
    key = "depth" if task_cls is DepthTask else "normal"
    first = cv2.imread(str(tmp_path / "pred" / f"p0_{key}.png"))
    assert (first[mask == 0] == 0).all()
    second = np.load(tmp_path / "pred" / f"p1_{key}.npy")
    assert second.shape[:2] == (30, 44)  # no mask: the whole frame is drawn
    assert cv2.imread(str(tmp_path / "pred" / f"p1_{key}.png")).any(-1).mean() > 0.9
    assert len(task.save_predictions([preds], tmp_path / "lim", limit=1)) == 2


@pytest.mark.parametrize("task_cls", [DepthTask, NormalTask])
def test_training_step_with_unequal_target_sizes(task_cls: type) -> None:
    """``augment=False`` keeps targets at their own sizes: the loss goes image by image."""
    task = task_cls(backbone="sapiens_test", img_size=(32, 32))
    key, channels = ("depth", 1) if task_cls is DepthTask else ("normal", 3)
    samples = []
    for size in [(20, 16), (24, 18)]:
        target = torch.rand(channels, *size) + 0.5
        samples.append({"image": torch.zeros(3, 32, 32, dtype=torch.uint8), key: target,
                        "valid_mask": torch.ones(size, dtype=torch.bool)})
    batch = collate(samples)
    assert isinstance(batch[key], list)
    loss = task.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss.detach())
