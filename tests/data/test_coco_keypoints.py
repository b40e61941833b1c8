"""COCO-style keypoint data on the real mini set: samples, loaders, boxes and bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from sapiens_kit.data import CocoKeypointDataModule
from sapiens_kit.data.datasets import CocoKeypoints, PersonCrops
from sapiens_kit.data.io import DataFileError
from sapiens_kit.data.transforms.pose import TopdownEvalTransform
from sapiens_kit.utils.config import asset_path
from tests.helpers import SHARED_DATA

MINI = SHARED_DATA / "coco_wholebody_mini"
DEMO = Path(asset_path("demo_pose"))  # the same 4 photos and COCO-WholeBody labels, bundled


@pytest.fixture
def mini() -> Path:
    """The bundled mini set (COCO-WholeBody and COCO-17 labels)."""
    return MINI


def copy_set(tmp_path: Path, edit: Any = None, name: str = "annotations.json") -> Path:
    """The demo set in ``tmp_path`` (images linked), its JSON passed through ``edit``."""
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    for img in (DEMO / "images").iterdir():
        (root / "images" / img.name).symlink_to(img)
    data = json.loads((DEMO / "annotations.json").read_text())
    if edit is not None:
        edit(data)
    (root / name).write_text(json.dumps(data))
    return root


def test_wholebody_samples() -> None:
    ds = CocoKeypoints(DEMO / "annotations.json", DEMO / "images", "coco_wholebody133",
                       transform=TopdownEvalTransform((256, 192)), train=True)
    assert len(ds) == 12  # 14 people, 2 without any labelled keypoint
    sample = ds[0]
    assert sample["image"].shape == (3, 256, 192) and sample["image"].dtype == torch.uint8
    assert sample["keypoints"].shape == (133, 2) and sample["keypoint_weights"].shape == (133,)
    meta = sample["meta"]
    assert meta["image_id"] == 785 and meta["boxes"] == "ground_truth"
    assert meta["scale"][0] / meta["scale"][1] == pytest.approx(0.75)
    with pytest.raises(RuntimeError, match="no ground truth"):
        ds.coco_ground_truth()  # training sets drop it to keep workers small
    val = CocoKeypoints(DEMO / "annotations.json", DEMO / "images", "coco_wholebody133")
    gt = val.coco_ground_truth()
    assert len(val) == 12 and len(gt["images"]) == 4
    assert len(gt["annotations"]) == 14 and len(gt["annotations"][0]["keypoints"]) == 399


def test_datamodule_coco17_loaders(mini: Path) -> None:
    dm = CocoKeypointDataModule(str(mini), "annotations_coco17.json", "annotations_coco17.json",
                                keypoints="coco17", img_size=(128, 96), batch_size=3)
    assert dm.task_kwargs() == {"keypoints": "coco17", "eval_keypoints": None,
                                "heatmap_sigma": None}
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 3, 128, 96) and batch["image"].dtype == torch.uint8
    assert batch["heatmap"].shape == (3, 17, 32, 24)
    assert batch["keypoints"].shape == (3, 17, 2)
    assert batch["keypoint_weights"].shape == (3, 17) and len(batch["meta"]) == 3
    val = next(iter(dm.val_dataloader()))
    assert [m["image_id"] for m in val["meta"]] == [785, 40083, 40083]


def test_wholebody_labels_for_a_goliath_model() -> None:
    dm = CocoKeypointDataModule(str(DEMO), "annotations.json", "annotations.json",
                                keypoints="goliath308", ann_keypoints="coco_wholebody133",
                                img_size=(128, 96), augment=False)
    kwargs = dm.task_kwargs()
    assert kwargs["keypoints"] == "goliath308"
    assert len(kwargs["eval_keypoints"]["names"]) == 53
    dm.setup("fit")
    sample = dm.train_dataset[0]
    assert sample["heatmap"].shape == (308, 32, 24)
    labelled = sample["keypoint_weights"].nonzero().flatten().tolist()
    assert labelled and set(labelled) <= set(range(63))  # body, feet and hands only
    gt = dm.coco_ground_truth()
    assert len(gt["annotations"][0]["keypoints"]) == 53 * 3


def test_detection_boxes_for_validation(tmp_path: Path) -> None:
    dets = [{"image_id": 785, "category_id": 1, "bbox": [280, 44, 218, 346], "score": 0.9},
            {"image_id": 785, "category_id": 1, "bbox": [10, 10, 30, 50], "score": 0.1},
            {"image_id": 785, "category_id": 2, "bbox": [10, 10, 30, 50], "score": 0.9}]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    ds = CocoKeypoints(DEMO / "annotations.json", DEMO / "images",
                       bboxes=tmp_path / "dets.json", bbox_score_thr=0.05)
    assert len(ds) == 2 and ds[0]["meta"]["boxes"] == "detections"
    assert ds[0]["keypoint_weights"].sum() == 0 and ds[0]["meta"]["bbox_score"] == 0.9
    dets.append({"image_id": 12345, "bbox": [1, 1, 5, 5], "score": 1.0})
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    with pytest.raises(DataFileError, match="12345") as err:
        CocoKeypoints(DEMO / "annotations.json", DEMO / "images", bboxes=tmp_path / "dets.json")
    assert "dets.json" in str(err.value)


def test_person_crops_whole_image_and_boxes(tmp_path: Path) -> None:
    images = sorted((DEMO / "images").glob("*.jpg"))
    whole = PersonCrops(images, (128, 96))
    assert len(whole) == 4 and whole[1]["meta"]["boxes"] == "whole_image"
    assert whole[0]["meta"]["bbox"] == [0.0, 0.0, 640.0, 425.0]
    (tmp_path / "boxes.json").write_text(json.dumps(
        {"000000000785.jpg": [[280, 44, 218, 346, 0.8], [0, 0, 50, 60]]}))
    boxed = PersonCrops(images[:2], (128, 96), tmp_path / "boxes.json")
    assert [s["meta"]["boxes"] for s in boxed] == ["detections", "detections", "whole_image"]
    gt = PersonCrops(images, (128, 96), DEMO / "annotations.json")
    assert len(gt) == 14


def _drop(key: str, index: int | None = None) -> Any:
    def edit(data: dict[str, Any]) -> None:
        if index is None:
            del data[key]
        else:
            del data["annotations"][index][key]
    return edit


@pytest.mark.parametrize(("edit", "kset", "match"), [
    (_drop("annotations"), "coco_wholebody133", "missing required field 'annotations'"),
    (_drop("bbox", 3), "coco_wholebody133", "has no 'bbox' field"),
    (_drop("face_kpts", 0), "coco_wholebody133", "no 'face_kpts' field"),
    (lambda d: d["annotations"][1].update(keypoints=[0.0] * 48), "coco_wholebody133",
     "holds 48 values; keypoint set 'coco_wholebody133' expects 17 points"),
    (None, "goliath308", "no 'goliath_wholebody_kpts' field"),
    (lambda d: d["images"][0].update(file_name="gone.jpg"), "coco_wholebody133",
     "gone.jpg: image referenced by"),
])
def test_bad_annotations_name_the_file(tmp_path: Path, edit: Any, kset: str, match: str) -> None:
    root = copy_set(tmp_path, edit)
    with pytest.raises(DataFileError, match=match) as err:
        CocoKeypoints(root / "annotations.json", root / "images", kset)
    assert str(root) in str(err.value)


def test_bad_boxes_are_counted_skips_or_errors(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["annotations"][0]["bbox"][2] = 0.0  # zero width
        data["annotations"][1]["bbox"] = [900.0, 10.0, 50.0, 50.0]  # right of a 500-px image
    root = copy_set(tmp_path, edit)
    with caplog.at_level(logging.WARNING):
        ds = CocoKeypoints(root / "annotations.json", root / "images", train=True)
    assert len(ds) == 10 and len(ds.skipped["bad_box"]) == 2
    assert str(root / "annotations.json") in caplog.text and "2 instance(s)" in caplog.text
    with pytest.raises(DataFileError, match="zero/negative-size") as err:
        CocoKeypoints(root / "annotations.json", root / "images", on_bad_instance="error")
    assert str(root / "annotations.json") in str(err.value)


def test_missing_files_and_folders(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="does not exist"):
        CocoKeypointDataModule(str(tmp_path / "nope"), "a.json")
    dm = CocoKeypointDataModule(str(tmp_path), "a.json")
    with pytest.raises(DataFileError, match=r"a\.json: annotation file does not exist"):
        dm.setup("fit")
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(DataFileError, match="not valid JSON"):
        CocoKeypoints(tmp_path / "a.json", tmp_path)
