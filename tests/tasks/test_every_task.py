"""Every registered task, end to end: train one step, validate, predict on a photo, export, draw,
build the training pictures and write a Hub card.

Parametrised over the task registry, so a new task is covered with no edit here: it only has to
implement its hooks, ``demo_data`` included (the tiny data it trains on).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from sapiens_kit.callbacks.wandb_media import batch_pictures
from sapiens_kit.data.collate import collate
from sapiens_kit.data.io import read_rgb
from sapiens_kit.export import export
from sapiens_kit.hub import from_pretrained, save_pretrained
from sapiens_kit.predict import predict
from sapiens_kit.tasks.registry import class_path, get_task_class, task_classes
from sapiens_kit.train import train
from sapiens_kit.utils.config import CONFIG_DIR, asset_path
from tests.helpers import offline_detector

KEYS = list(task_classes())
PHOTO = Path(asset_path("demo_seg")) / "images" / "000000040083.jpg"
TINY_HEAD = {"deconv_channels": [8], "conv_channels": [8]}


def task_overrides(key: str) -> list[str]:
    """Pick the task: its config group when it has one, else its class as the model."""
    if (Path(CONFIG_DIR) / "task" / f"{key}.yaml").is_file():
        return [f"task={key}"]
    return [f"model._target_={class_path(get_task_class(key))}"]


def compose_app(app: str, key: str, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=app, overrides=[*task_overrides(key), *overrides])


def train_cfg(key: str, tmp_path: Path) -> DictConfig:
    cfg = compose_app("train", key, "backbone=sapiens_test", "img_size=[64,48]", "debug=fdr",
                      f"paths.output_dir={tmp_path / 'run'}")
    cfg.data = OmegaConf.create(get_task_class(key).demo_data(tmp_path / "data"))
    cfg.model.head = TINY_HEAD
    cfg.model.allow_random_init = True
    return cfg


def assert_picture(picture: Any, height: int | None = None) -> None:
    assert isinstance(picture, np.ndarray) and picture.dtype == np.uint8
    assert picture.ndim == 3 and picture.shape[2] == 3
    if height is not None:
        assert picture.shape[0] == height


@pytest.mark.parametrize("key", KEYS)
def test_task_end_to_end(key: str, tmp_path: Path) -> None:
    cls = get_task_class(key)
    cfg = train_cfg(key, tmp_path)
    metrics, objs = train(cfg)
    model, trainer, datamodule = objs["model"], objs["trainer"], objs["datamodule"]
    assert isinstance(model, cls) and np.isfinite(metrics["train/loss"])

    # Validate (and test: the same loop) on the tiny data.
    results = trainer.validate(model, datamodule=datamodule, verbose=False)
    assert results and cfg.monitor in results[0]
    assert trainer.test(model, datamodule=datamodule, verbose=False)
    ckpt = tmp_path / "task.ckpt"
    trainer.save_checkpoint(ckpt)

    # Predict on a real photo through the app.
    out = tmp_path / "pred"
    written = predict(compose_app("predict", key, f"ckpt={ckpt}", f"input={PHOTO}",
                                  "accelerator=cpu", *offline_detector()), out)
    assert (out / "summary.json") in written and len(written) >= 2
    assert json.loads((out / "summary.json").read_text())["images"] == 1

    # Export, checked against the LightningModule by the app itself.
    report = export(compose_app("export", key, f"ckpt={ckpt}", "format=torchscript"),
                    tmp_path / "export")
    assert report["max_abs_diff"] <= report["tolerance"]

    # Draw one image's predictions.
    model.eval()
    dataset = model.predict_dataset([PHOTO])
    batch = collate([dataset[i] for i in range(len(dataset))])
    with torch.no_grad():
        items = model.predict_step(batch, 0)
    photo = read_rgb(PHOTO)
    assert_picture(model.draw(photo, items), photo.shape[0])

    # Training pictures of a validation batch, with and without predictions.
    val_batch = next(iter(datamodule.val_dataloader()))
    kind, pictures = batch_pictures(model, val_batch, 2)
    assert kind and 1 <= len(pictures) <= 2
    for picture in pictures:
        assert_picture(picture.image)
    _, labels_only = batch_pictures(model, val_batch, 1, predict=False)
    assert len(labels_only) == 1

    # Hub folder and card; the task comes back with the same weights.
    folder = tmp_path / "hub"
    save_pretrained(model, folder, {"val/x": 0.5}, "org/tiny")
    card = ModelCard.load(folder / "README.md")
    assert card.data.pipeline_tag == cls.card_info.pipeline_tag
    assert cls.card_info.title in card.text and "| val/x | 0.5 |" in card.text
    config = json.loads((folder / "config.json").read_text())
    assert config["task"] == key and config["task_class"] == class_path(cls)
    again = from_pretrained(folder, task=key)
    x = torch.randint(0, 255, (1, 3, 64, 48), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
