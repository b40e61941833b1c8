"""``data.on_error=raise|skip`` for corrupt files, and data that doesn't fit the model fails at
start (before any batch)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest

from sapiens_kit.data import CocoKeypointDataModule, DenseFolderDataModule, MaskFolderDataModule
from sapiens_kit.data.io import DataFileError
from sapiens_kit.data.reliability import (
    SKIPPED_KEY,
    DataMismatchError,
    SkippedSamplesReport,
    check_data_matches_task,
)
from sapiens_kit.train import train
from sapiens_kit.utils.config import asset_path
from tests.helpers import run_cfg, tiny_task, write_mask_folder


def truncate(path: Path, keep: int = 60) -> None:
    """Cut a file after its header: the size is readable, the pixels are not."""
    path.write_bytes(path.read_bytes()[:keep])


def corrupt_seg(root: Path) -> tuple[Path, Path]:
    """img1's image truncated (fails when read), img2's mask garbage (fails the up-front check)."""
    truncate(root / "images" / "img1.png")
    (root / "masks" / "img2.png").write_bytes(b"not a png at all")
    return root / "images" / "img1.png", root / "masks" / "img2.png"


def test_default_raises_naming_the_file(tmp_path: Path) -> None:
    root = write_mask_folder(tmp_path / "seg", n=4)
    good_mask = (root / "masks" / "img2.png").read_bytes()
    bad_img, bad_mask = corrupt_seg(root)
    with pytest.raises(DataFileError, match=str(bad_mask)):
        MaskFolderDataModule(str(root), img_size=(32, 32)).setup()
    bad_mask.write_bytes(good_mask)
    dm = MaskFolderDataModule(str(root), img_size=(32, 32), augment=False)
    dm.setup()
    with pytest.raises(DataFileError, match=str(bad_img)):
        list(dm.val_dataloader())


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_replaces_and_names_the_files(tmp_path: Path, workers: int) -> None:
    root = write_mask_folder(tmp_path / "seg", n=5)
    bad_img, bad_mask = corrupt_seg(root)
    dm = MaskFolderDataModule(str(root), img_size=(32, 32), augment=False, batch_size=2,
                              num_workers=workers, on_error="skip")
    dm.setup()
    assert dm.train_dataset.unreadable == [str(bad_mask)]
    assert len(dm.train_dataset) == 4
    batches = list(dm.val_dataloader())
    assert sum(len(b["meta"]) for b in batches) == 4
    skipped = [f for b in batches for m in b["meta"] for f in m[SKIPPED_KEY]]
    assert skipped == [str(bad_img)]
    paths = [m["path"] for b in batches for m in b["meta"]]
    assert str(bad_img) not in paths and len(paths) == 4  # replaced by a readable sample


def test_skip_is_reported_at_the_end_of_each_epoch(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    root = write_mask_folder(tmp_path / "seg", n=5)
    bad_img, bad_mask = corrupt_seg(root)
    with caplog.at_level(logging.WARNING):
        metrics, objs = train(run_cfg(root, tmp_path / "out", "data.on_error=skip",
                                      "data.num_workers=1", "trainer.max_epochs=2"))
    assert any(isinstance(c, SkippedSamplesReport) for c in objs["trainer"].callbacks)
    # one bad image per pass over 4 samples, in each of the 2 train epochs and val passes
    assert metrics["train/skipped"] == 1.0 and metrics["val/skipped"] == 1.0
    text = caplog.text
    assert f"epoch 1 train: 1 corrupt samples skipped (replaced by others): {bad_img}" in text
    assert "epoch 1 val: 1 corrupt samples skipped" in text
    assert "1 unreadable files were dropped before" in text and str(bad_mask) in text


def test_skip_dense_folder_drops_an_unreadable_depth(tmp_path: Path) -> None:
    import cv2

    root = tmp_path / "depth"
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(root / "images" / f"s{i}.png"), rng.integers(0, 255, (20, 16, 3),
                                                                     dtype=np.uint8))
        np.save(root / "depth" / f"s{i}.npy", rng.uniform(1, 5, (20, 16)).astype(np.float32))
    truncate(root / "depth" / "s1.npy", 40)
    with pytest.raises(DataFileError, match=r"s1\.npy"):
        DenseFolderDataModule(str(root), "depth", img_size=(32, 32)).setup()
    dm = DenseFolderDataModule(str(root), "depth", img_size=(32, 32), on_error="skip")
    dm.setup()
    assert dm.train_dataset.unreadable == [str(root / "depth" / "s1.npy")]
    assert len(list(dm.train_dataloader())) == 1


def test_skip_pose_replaces_an_unreadable_image(tmp_path: Path) -> None:
    import shutil

    root = Path(shutil.copytree(asset_path("demo_pose"), tmp_path / "pose"))
    first = sorted((root / "images").iterdir())[0]
    truncate(first, 200)
    kw: dict[str, Any] = dict(train_ann="annotations.json", val_ann="annotations.json",
                              img_dir="images", keypoints="coco_wholebody133",
                              img_size=(64, 48), batch_size=4)
    dm = CocoKeypointDataModule(str(root), **kw)
    dm.setup()
    with pytest.raises(DataFileError, match=first.name):
        list(dm.val_dataloader())
    dm = CocoKeypointDataModule(str(root), on_error="skip", **kw)
    dm.setup()
    metas = [m for b in dm.val_dataloader() for m in b["meta"]]
    assert len(metas) == len(dm.val_dataset)
    assert {f for m in metas for f in m[SKIPPED_KEY]} == {str(first)}


# ------------------------------------------------------------------ data vs model, at start
class NoBatch(L.Callback):
    """Fails the test if any batch is reached."""

    def on_validation_batch_start(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the mismatch should have been caught before the first batch")

    on_train_batch_start = on_validation_batch_start


def trainer() -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, callbacks=[NoBatch()], max_epochs=1)


def test_a_28_class_model_on_a_3_class_folder_fails_at_start(tmp_path: Path) -> None:
    root = write_mask_folder(tmp_path / "seg", n=2)
    dm = MaskFolderDataModule(str(root), img_size=(32, 32))
    model = tiny_task("seg", img_size=(32, 32), num_classes=28,
                      class_names=[f"c{i}" for i in range(28)])
    with pytest.raises(DataMismatchError, match="num_classes: data has 3, model has 28"):
        trainer().validate(model, datamodule=dm)
    with pytest.raises(DataMismatchError, match="num_classes"):
        trainer().fit(model, datamodule=dm)


def test_same_count_but_other_names_or_size_fails(tmp_path: Path) -> None:
    root = write_mask_folder(tmp_path / "seg", n=2)
    dm = MaskFolderDataModule(str(root), img_size=(32, 32))
    renamed = tiny_task("seg", img_size=(32, 32), class_names=["bg", "arm", "leg"])
    with pytest.raises(DataMismatchError, match="class_names"):
        trainer().validate(renamed, datamodule=dm)
    other_size = tiny_task("seg", img_size=(64, 48))
    with pytest.raises(DataMismatchError, match=r"img_size: data is resized to \(32, 32\)"):
        trainer().validate(other_size, datamodule=dm)
    check_data_matches_task(dm, tiny_task("seg", img_size=(32, 32)))  # a matching pair passes


def test_keypoint_count_mismatch_fails_at_start() -> None:
    dm = CocoKeypointDataModule(asset_path("demo_pose"), train_ann="annotations.json",
                                val_ann="annotations.json", img_dir="images",
                                keypoints="coco_wholebody133", img_size=(64, 48))
    model = tiny_task("pose", img_size=(64, 48), keypoints="coco17")
    with pytest.raises(DataMismatchError, match=r"keypoints: data has 133 .* model has 17"):
        trainer().validate(model, datamodule=dm)


def test_evaluate_app_refuses_a_mismatched_folder(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir

    from sapiens_kit.evaluate import evaluate
    from sapiens_kit.utils.config import CONFIG_DIR
    from tests.helpers import save_task_checkpoint

    root = write_mask_folder(tmp_path / "seg", n=2)
    ckpt = save_task_checkpoint(
        tiny_task("seg", img_size=(32, 32), num_classes=28,
                  class_names=[f"c{i}" for i in range(28)]), tmp_path / "m.ckpt")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("evaluate", overrides=[
            "task=seg", "backbone=sapiens_test", "data=mask_folder", f"data.root={root}",
            "data.num_workers=0", "img_size=[32,32]", "trainer=cpu", f"ckpt={ckpt}",
            f"paths.output_dir={tmp_path / 'out'}", "~logger"])
    with pytest.raises(DataMismatchError, match="num_classes: data has 3, model has 28"):
        evaluate(cfg)
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_on_error_value_is_checked(tmp_path: Path) -> None:
    root = write_mask_folder(tmp_path / "seg", n=2)
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        MaskFolderDataModule(str(root), on_error="ignore")
