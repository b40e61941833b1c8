"""The segmentation task trains, validates and predicts end to end."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from sapiens_kit.tasks import SegmentationTask
from sapiens_kit.train import train
from tests.helpers import SHARED_DATA, compose_cfg, write_mask_folder


def test_fast_dev_run(seg_folder: Path, tmp_path: Path) -> None:
    cfg = compose_cfg("task=seg", "backbone=sapiens_test", "data=fake_seg",
                      f"data.root={seg_folder}", "img_size=[64,48]", "debug=fdr",
                      out=tmp_path / "out")
    metrics, _ = train(cfg)
    assert "train/loss" in metrics and np.isfinite(metrics["train/loss"])
    assert "val/mIoU" in metrics


def test_train_validate_predict_on_generated_data(seg_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = compose_cfg("task=seg", "backbone=sapiens_test", "data=fake_seg",
                      f"data.root={seg_folder}", "img_size=[64,48]", "trainer.max_epochs=2",
                      "trainer.accelerator=cpu", "model.warmup_steps=1", out=out)
    metrics, _ = train(cfg)
    assert (out / "checkpoints" / "best.ckpt").is_file()
    assert (out / "checkpoints" / "last.ckpt").is_file()
    saved = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= saved["val/mIoU"] <= 1.0 and saved["val/mIoU"] == metrics["val/mIoU"]
    masks = sorted((out / "predictions").glob("*_mask.png"))
    assert len(masks) == 4
    # Predictions come back at each image's original size.
    for m in masks:
        stem = m.name.removesuffix("_mask.png")
        orig = cv2.imread(str(seg_folder / "images" / f"{stem}.png"))
        pred = cv2.imread(str(m), cv2.IMREAD_UNCHANGED)
        assert pred.shape == orig.shape[:2] and pred.max() < 3
    # The checkpoint reloads without Hydra and without the original weights argument.
    task = SegmentationTask.load_from_checkpoint(out / "checkpoints" / "best.ckpt")
    assert task.hparams.num_classes == 3 and task.class_names[1] == "part1"


def test_train_on_real_coco_person_masks(tmp_path: Path) -> None:
    root = SHARED_DATA / "coco_person_masks_mini"
    out = tmp_path / "out"
    cfg = compose_cfg("task=seg", "backbone=sapiens_test", "data=mask_folder",
                      f"data.root={root}", "data.num_workers=0", "img_size=[128,96]",
                      "trainer.max_epochs=1", "trainer.accelerator=cpu", "num_overlays=2",
                      out=out)
    metrics, objs = train(cfg)
    assert set(objs["model"].class_names) == {"background", "person"}
    assert 0 < metrics["val/aAcc"] <= 1
    assert len(list((out / "predictions").glob("*_overlay.jpg"))) == 2


def test_overfits_generated_blobs(tmp_path: Path) -> None:
    """A tiny model learns figure/ground on the generated images: mIoU far above chance."""
    seg_folder = write_mask_folder(tmp_path / "fg", num_classes=2)
    cfg = compose_cfg("task=seg", "backbone=sapiens_test", "data=fake_seg",
                      f"data.root={seg_folder}", "img_size=[128,96]", "trainer.max_epochs=100",
                      "trainer.accelerator=cpu", "data.augment=false", "model.warmup_steps=0",
                      "model.lr=3e-3", "model.layer_decay=null",
                      "model.head.dropout=0", "test_after_fit=false", "num_overlays=0",
                      "callbacks=none", "~logger", "+trainer.enable_checkpointing=false",
                      "trainer.check_val_every_n_epoch=100", out=tmp_path / "o")
    torch.manual_seed(0)
    metrics, _ = train(cfg)
    assert metrics["val/mIoU"] > 0.8, metrics
