"""HFDatasetDataModule: local `datasets` tables (save_to_disk, imagefolder) for every task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from datasets import Array2D, Array3D, Dataset, DatasetDict, Features, Image, Sequence, Value
from PIL import Image as PILImage

from sapiens_kit.data import HFDatasetDataModule
from sapiens_kit.data.io import DataFileError
from sapiens_kit.train import train
from sapiens_kit.utils.config import asset_path
from tests.helpers import compose_cfg, write_mask_folder

SIZE = (64, 48)


def seg_table(folder: Path) -> Dataset:
    images = sorted((folder / "images").glob("*.png"))
    return Dataset.from_dict(
        {"photo": [str(p) for p in images],
         "labels": [str(folder / "masks" / p.name) for p in images]},
        features=Features({"photo": Image(), "labels": Image()}))


@pytest.fixture(scope="module")
def seg_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hfseg")
    folder = write_mask_folder(tmp / "src", n=4)
    table = seg_table(folder)
    out = tmp / "ds"
    DatasetDict({"train": table.select(range(3)), "validation": table.select([3])}) \
        .save_to_disk(str(out))
    return out


def module(path: Path | str, tmp: Path, **kwargs: Any) -> HFDatasetDataModule:
    kwargs.setdefault("img_size", SIZE)
    return HFDatasetDataModule(str(path), cache_dir=str(tmp / "cache"), **kwargs)


def test_seg_from_save_to_disk_with_class_names(seg_disk: Path, tmp_path: Path) -> None:
    dm = module(seg_disk, tmp_path, image_column="photo", mask_column="labels",
                classes=["background", "left", "right"], augment=False)
    assert dm.task_kwargs()["class_names"] == ["background", "left", "right"]
    dm.setup("fit")
    assert len(dm.train_dataset) == 3 and len(dm.val_dataset) == 1
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, *SIZE) and batch["image"].dtype == torch.uint8
    assert set(batch["mask"].unique().tolist()) <= {0, 1, 2}
    # The same mask pixels as the source files, through the same pipeline.
    sample = dm.val_dataset[0]
    src = np.asarray(PILImage.open(seg_table(seg_disk.parent / "src")[3]["labels"].filename))
    assert np.array_equal(sample["mask"].numpy(), src)
    # Exported once: a second module reuses the export.
    root = dm.root
    stamp = (root / ".complete").stat().st_mtime_ns
    again = module(seg_disk, tmp_path, image_column="photo", mask_column="labels",
                   classes=["background", "left", "right"])
    again.setup("fit")
    assert again.root == root and (root / ".complete").stat().st_mtime_ns == stamp
    assert not list((tmp_path / "cache").glob("*.partial-*"))


def test_seg_from_imagefolder_with_val_fraction(tmp_path: Path) -> None:
    folder = write_mask_folder(tmp_path / "src", n=4)
    train_dir = tmp_path / "imf" / "train"
    train_dir.mkdir(parents=True)
    lines = []
    for p in sorted((folder / "images").glob("*.png")):
        (train_dir / p.name).write_bytes(p.read_bytes())
        (train_dir / f"{p.stem}_mask.png").write_bytes((folder / "masks" / p.name).read_bytes())
        lines.append(json.dumps({"file_name": p.name, "mask_file_name": f"{p.stem}_mask.png"}))
    (train_dir / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    dm = module(tmp_path / "imf", tmp_path, val_fraction=0.25,
                load_kwargs={"cache_dir": str(tmp_path / "hf")})
    kwargs = dm.task_kwargs()
    assert kwargs["num_classes"] == 3 and kwargs["class_names"][2] == "class_2"
    dm.setup("fit")
    assert (len(dm.train_dataset), len(dm.val_dataset)) == (3, 1)
    # Encoded images are copied as they are.
    exported = sorted((dm.root / "train" / "images").iterdir())
    assert {p.read_bytes() for p in exported} <= {p.read_bytes() for p in
                                                  (folder / "images").iterdir()}


def test_seg_fast_dev_run_through_hydra(seg_disk: Path, tmp_path: Path) -> None:
    cfg = compose_cfg("task=seg", "backbone=sapiens_test", "data=hf_seg", f"data.path={seg_disk}",
                      "data.image_column=photo", "data.mask_column=labels", "data.num_workers=0",
                      f"data.cache_dir={tmp_path / 'cache'}", "img_size=[64,48]", "debug=fdr",
                      "model.weights=null", out=tmp_path / "out")
    metrics, objects = train(cfg)
    assert np.isfinite(metrics["train/loss"]) and "val/mIoU" in metrics
    assert objects["model"].hparams.num_classes == 3


def dense_table(tmp: Path, target: str, n: int = 3) -> Dataset:
    from sapiens_kit.data.synthetic import ensure_demo

    root = ensure_demo(tmp / "synthetic", n, 1, size=SIZE) / "train"
    stems = sorted(p.stem for p in (root / "images").glob("*.png"))[:n]
    shape = (*SIZE, 3) if target == "normal" else SIZE
    array = Array3D(shape, "float32") if target == "normal" else Array2D(shape, "float32")
    return Dataset.from_dict(
        {"image": [str(root / "images" / f"{s}.png") for s in stems],
         target: [np.load(root / target / f"{s}.npy") for s in stems],
         "person": [str(root / "mask" / f"{s}.png") for s in stems]},
        features=Features({"image": Image(), target: array, "person": Image()}))


@pytest.mark.parametrize("target", ["depth", "normal"])
def test_dense_arrays_with_foreground(target: str, tmp_path: Path) -> None:
    table = dense_table(tmp_path, target)
    table.save_to_disk(str(tmp_path / "ds"))
    dm = module(tmp_path / "ds", tmp_path, task=target, foreground_column="person",
                augment=False)
    dm.setup("fit")
    sample = dm.val_dataset[0]  # no val split: validates on train (the folder module warns)
    expected = np.asarray(table[0][target], dtype=np.float32)
    got = sample[target].numpy()
    got = got[0] if target == "depth" else got.transpose(1, 2, 0)
    fg = np.asarray(table[0]["person"]) > 0
    valid = sample["valid_mask"].numpy()
    assert valid.sum() > 0 and not (valid & ~fg).any()
    np.testing.assert_allclose(got[valid], expected[valid], rtol=1e-5, atol=1e-5)
    assert len(dm.train_dataset) == 3


def test_normals_as_rgb_images(tmp_path: Path) -> None:
    table = dense_table(tmp_path, "normal", n=2)
    rgb = [PILImage.fromarray(((np.asarray(n) + 1) / 2 * 255).round().astype(np.uint8))
           for n in table["normal"]]
    Dataset.from_dict({"image": table["image"], "normal": rgb},
                      features=Features({"image": Image(), "normal": Image()})) \
        .save_to_disk(str(tmp_path / "ds"))
    dm = module(tmp_path / "ds", tmp_path, task="normal", augment=False)
    dm.setup("fit")
    sample = dm.val_dataset[0]
    got = sample["normal"].numpy().transpose(1, 2, 0)[sample["valid_mask"].numpy()]
    assert np.allclose(np.linalg.norm(got, axis=-1), 1, atol=1e-4)


def pose_table() -> tuple[Dataset, dict[str, Any]]:
    root = Path(asset_path("demo_pose"))
    coco = json.loads((root / "annotations.json").read_text())
    rows: dict[str, list[Any]] = {"image": [], "keypoints": [], "bboxes": []}
    for img in coco["images"]:
        anns = [a for a in coco["annotations"] if a["image_id"] == img["id"] and not a["iscrowd"]]
        rows["image"].append(str(root / "images" / img["file_name"]))
        rows["keypoints"].append([a["keypoints"] for a in anns])
        rows["bboxes"].append([a["bbox"] for a in anns])
    features = Features({"image": Image(), "keypoints": Sequence(Sequence(Value("float32"))),
                         "bboxes": Sequence(Sequence(Value("float32")))})
    return Dataset.from_dict(rows, features=features), coco


def test_pose_keypoints_to_coco_pipeline(tmp_path: Path) -> None:
    table, coco = pose_table()
    DatasetDict({"train": table, "validation": table}).save_to_disk(str(tmp_path / "ds"))
    dm = module(tmp_path / "ds", tmp_path, task="pose", bbox_column="bboxes",
                keypoints="coco17", augment=False)
    assert dm.task_kwargs()["keypoints"] == "coco17"
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, *SIZE) and batch["keypoints"].shape == (2, 17, 2)
    gt = dm.coco_ground_truth()
    labelled = [a for a in coco["annotations"] if not a["iscrowd"]]
    assert len(gt["annotations"]) == len(labelled)
    assert gt["annotations"][0]["keypoints"] == pytest.approx(labelled[0]["keypoints"], abs=1e-3)
    # Without a box column the boxes come from the keypoints.
    boxless = module(tmp_path / "ds", tmp_path, task="pose", keypoints="coco17")
    boxless.setup("fit")
    assert boxless.root != dm.root and len(boxless.val_dataset) > 0


def test_pose_fast_dev_run_scores_keypoint_ap(tmp_path: Path) -> None:
    table, _ = pose_table()
    DatasetDict({"train": table, "validation": table}).save_to_disk(str(tmp_path / "ds"))
    cfg = compose_cfg("task=pose", "backbone=sapiens_test", "data=hf_pose",
                      f"data.path={tmp_path / 'ds'}", "data.bbox_column=bboxes", "img_size=[64,48]",
                      "data.num_workers=0", f"data.cache_dir={tmp_path / 'cache'}", "debug=fdr",
                      "model.weights=null", out=tmp_path / "out")
    metrics, objects = train(cfg)
    assert "val/AP" in metrics and objects["model"].kset.name == "coco17"


def test_bad_columns_and_values_are_clear_errors(seg_disk: Path, tmp_path: Path) -> None:
    roles = r"no column 'image' \(data.image_column\), 'mask' .*'photo'"
    with pytest.raises(DataFileError, match=roles):
        module(seg_disk, tmp_path).task_kwargs()
    with pytest.raises(DataFileError, match="no split 'training'"):
        module(seg_disk, tmp_path, image_column="photo", mask_column="labels",
               train_split="training").setup()
    colour = Dataset.from_dict(
        {"image": [np.zeros((8, 6, 3), np.uint8)],
         "mask": [np.stack([np.zeros((8, 6)), np.ones((8, 6)), np.zeros((8, 6))], -1)]})
    colour.save_to_disk(str(tmp_path / "colour"))
    with pytest.raises(DataFileError, match="colour-coded"):
        module(tmp_path / "colour", tmp_path).task_kwargs()
    assert not list((tmp_path / "cache").glob("*.partial-*"))
    with pytest.raises(DataFileError, match="no such dataset"):
        module(tmp_path / "nowhere", tmp_path).task_kwargs()
