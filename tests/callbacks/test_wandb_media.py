"""The W&B media callback: pictures for every task, keys, cadence, and a real offline run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
import pytest

from sapiens_kit.callbacks.wandb_media import WandbMediaCallback, batch_pictures
from sapiens_kit.data import CocoKeypointDataModule, DenseFolderDataModule, MaskFolderDataModule
from sapiens_kit.utils.config import asset_path
from tests.helpers import compose_cfg, tiny_task, write_mask_folder

SIZE = (64, 48)


def datamodule(key: str, tmp: Path) -> Any:
    match key:
        case "seg":
            dm = MaskFolderDataModule(str(write_mask_folder(tmp / "seg")), img_size=SIZE,
                                      batch_size=2, augment=False)
        case "pose":
            dm = CocoKeypointDataModule(asset_path("demo_pose"), "annotations.json",
                                        "annotations.json", keypoints="coco_wholebody133",
                                        img_size=SIZE, batch_size=2, augment=False)
        case _:
            dm = DenseFolderDataModule(None, key, img_size=SIZE, batch_size=2, augment=False,
                                       demo_size=(2, 2), demo_image_size=SIZE,
                                       cache_dir=str(tmp / "synthetic"))
    dm.setup("fit")
    return dm


def task_for(key: str, dm: Any) -> Any:
    return tiny_task(key, SIZE, **dm.task_kwargs())


class Recorder:
    """Stands in for ``WandbLogger.log_image``: keeps what would be logged."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, key: str, images: list[Any], step: int | None = None,
                 **kwargs: Any) -> None:
        self.calls.append({"key": key, "images": images, "step": step, **kwargs})


@pytest.mark.parametrize(("key", "kind", "panels"), [
    ("seg", "segmentation", 1), ("pose", "keypoints", 2), ("depth", "depth", 3),
    ("normal", "normals", 3)])
def test_batch_pictures_for_each_task(key: str, kind: str, panels: int, tmp_path: Path) -> None:
    dm = datamodule(key, tmp_path)
    task = task_for(key, dm)
    batch = next(iter(dm.val_dataloader()))
    got_kind, pictures = batch_pictures(task, batch, 3)
    assert got_kind == kind and len(pictures) == 2
    for p in pictures:
        assert p.image.dtype == np.uint8 and p.image.shape == (SIZE[0], SIZE[1] * panels, 3)
    if key == "seg":
        layers = pictures[0].masks
        assert set(layers) == {"prediction", "ground_truth"}
        assert layers["prediction"]["mask_data"].shape == SIZE
        assert layers["prediction"]["class_labels"][2] == "part2"
        assert pictures[0].flat.shape == (SIZE[0], 2 * SIZE[1], 3)
    _, train = batch_pictures(task, next(iter(dm.train_dataloader())), 1, predict=False)
    assert len(train) == 1 and train[0].image.shape[1] == SIZE[1] * max(1, panels - 1)


def fit_with_callback(tmp_path: Path, logger: Any, key: str = "seg", **cb: Any) -> None:
    dm = datamodule(key, tmp_path)
    task = task_for(key, dm)
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, limit_train_batches=1,
                        limit_val_batches=2, logger=logger, enable_checkpointing=False,
                        callbacks=[WandbMediaCallback(**cb)], enable_progress_bar=False,
                        num_sanity_val_steps=1, default_root_dir=tmp_path)
    try:
        trainer.fit(task.train(), datamodule=dm)
    finally:
        import wandb

        wandb.finish()  # else the next WandbLogger in this process reuses the run


def test_callback_logs_val_and_train_media_on_cadence(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.loggers import WandbLogger

    recorder = Recorder()
    monkeypatch.setattr(WandbLogger, "log_image", recorder)
    fit_with_callback(tmp_path, WandbLogger(save_dir=str(tmp_path)),  # WANDB_MODE=disabled
                      every_n_val_steps=1, max_images=3, every_n_validations=1)
    keys = [c["key"] for c in recorder.calls]
    # Training batch once; each of the 2 epochs' validations (not the sanity check) once.
    assert keys == ["train/segmentation", "val/segmentation", "val/segmentation"]
    val = recorder.calls[1]
    assert len(val["images"]) == 3 and len(val["masks"]) == 3 and len(val["caption"]) == 3
    assert val["masks"][0]["prediction"]["class_labels"][0] == "background"
    assert recorder.calls[2]["step"] > val["step"]


def test_callback_cadence_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.loggers import WandbLogger

    recorder = Recorder()
    monkeypatch.setattr(WandbLogger, "log_image", recorder)
    fit_with_callback(tmp_path, WandbLogger(save_dir=str(tmp_path)),
                      every_n_val_steps=2, max_images=4, every_n_validations=2,
                      log_train_batch=False)
    # Only the first of two validations; of its 2 batches only batch 0 (2 images).
    assert [(c["key"], len(c["images"])) for c in recorder.calls] == [("val/segmentation", 2)]


def test_callback_without_media_logger_does_nothing(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    from lightning.pytorch.loggers import CSVLogger

    fit_with_callback(tmp_path, CSVLogger(tmp_path))
    assert "no W&B or TensorBoard logger" in caplog.text


def test_tensorboard_gets_the_same_pictures(tmp_path: Path) -> None:
    """The pictures land in the TensorBoard event file, read back with TensorBoard's reader."""
    pytest.importorskip("tensorboard")
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, name="tb")
    fit_with_callback(tmp_path, logger, max_images=1, log_train_batch=True)
    logger.experiment.flush()
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert {"val/segmentation/0", "train/segmentation/0"} <= set(events.Tags()["images"])
    picture = events.Images("val/segmentation/0")[0]
    assert (picture.height, picture.width) == (SIZE[0], 2 * SIZE[1])  # image | prediction
    decoded = cv2.imdecode(np.frombuffer(picture.encoded_image_string, np.uint8),
                           cv2.IMREAD_COLOR)
    assert decoded.shape == (SIZE[0], 2 * SIZE[1], 3) and decoded.std() > 0


def test_offline_wandb_run_holds_the_media(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    # mode= too: in a process where W&B already started, its env variables are not re-read.
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, mode="offline",
                         project="sapiens_kit_tests")
    fit_with_callback(tmp_path, logger, max_images=2)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    media = runs[0] / "files" / "media"
    val = sorted((media / "images" / "val").glob("segmentation_*.png"))
    train = sorted((media / "images" / "train").glob("segmentation_*.png"))
    assert len(val) == 4 and len(train) == 2  # 2 pictures x 2 validations; 2 training inputs
    # Mask layers: prediction + labels per validation picture, labels only for training.
    assert len(list((media / "images" / "mask" / "val").glob("*.mask.png"))) == 2 * 4
    assert len(list((media / "images" / "mask" / "train").glob("*.mask.png"))) == 2


def test_preset_composes_alone_and_in_a_list() -> None:
    from hydra.utils import instantiate

    cfg = compose_cfg("callbacks=wandb_media", "logger=wandb")
    callback = instantiate(cfg.callbacks.wandb_media)
    assert isinstance(callback, WandbMediaCallback) and callback.max_images == 8
    assert "model_checkpoint" in cfg.callbacks
    both = compose_cfg("callbacks=[none,wandb_media]")  # presets combine as a list
    assert {"wandb_media", "model_checkpoint"} <= set(both.callbacks)
