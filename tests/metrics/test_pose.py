"""COCO keypoint AP: perfect predictions score 1, and numbers equal pycocotools' own."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from sapiens_kit.data.datasets import CocoKeypoints
from sapiens_kit.data.keypoints import load_keypoint_set
from sapiens_kit.metrics import CocoKeypointMetric
from sapiens_kit.metrics.pose import oks_nms, rescore
from sapiens_kit.utils.config import asset_path
from tests.helpers import SHARED_DATA

MINI = SHARED_DATA / "coco_wholebody_mini"
DEMO = Path(asset_path("demo_pose"))


def ground_truth(ann_file: Path, kset: str) -> dict[str, Any]:
    """The evaluation ground truth the data module hands the task."""
    return CocoKeypoints(ann_file, ann_file.parent / "images", kset).coco_ground_truth()


def feed(metric: CocoKeypointMetric, gt: dict[str, Any], noise: float = 0.0,
         seed: int = 0) -> None:
    """One prediction per labelled GT person: its keypoints (+ noise), then a duplicate and a
    stray box so that OKS-NMS and false positives matter."""
    rng = np.random.default_rng(seed)
    for ann in gt["annotations"]:
        kps = np.asarray(ann["keypoints"], np.float32).reshape(-1, 3)
        if ann["iscrowd"] or not (kps[:, 2] > 0).any():
            continue
        xy = kps[:, :2] + rng.normal(0, noise, kps[:, :2].shape) * np.sqrt(ann["area"])
        scores = (kps[:, 2] > 0).astype(np.float32)
        if noise:
            scores = rng.uniform(0.1, 1.0, len(kps)).astype(np.float32)
        w, h = ann["bbox"][2:]
        args = (torch.tensor([ann["image_id"]]), torch.tensor(xy[None]),
                torch.tensor(scores[None]), torch.tensor([1.0]), torch.tensor([w * h * 1.5]))
        metric.update(*args)
        if noise:
            metric.update(args[0], args[1] + 0.5, args[2] * 0.9, args[3], args[4])  # NMS'd
            metric.update(args[0], args[1] * 0.5, args[2] * 0.5, args[3], args[4])  # stray


def coco_eval(gt: COCO, results: list[dict[str, Any]], sigmas: np.ndarray) -> np.ndarray:
    """Plain pycocotools keypoint evaluation."""
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, gt.loadRes(results), "keypoints")
        evaluator.params.kpt_oks_sigmas = sigmas
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def load_coco(path: Path | dict[str, Any]) -> COCO:
    """A pycocotools COCO object from a file or dict, quietly."""
    with contextlib.redirect_stdout(io.StringIO()):
        if isinstance(path, Path):
            return COCO(str(path))
        coco = COCO()
        coco.dataset = path
        coco.createIndex()
        return coco


def test_ground_truth_as_predictions_scores_one() -> None:
    gt = ground_truth(DEMO / "annotations.json", "coco_wholebody133")
    metric = CocoKeypointMetric("coco_wholebody133")
    feed(metric, gt)
    metric.ground_truth = gt
    result = metric.compute()
    for key in ("AP", "AP50", "AP75", "AR", "AP/body", "AP/foot", "AP/face", "AP/left_hand",
                "AP/right_hand"):
        assert result[key] == pytest.approx(1.0), key
    assert len(metric.last_results) == 12


def test_ground_truth_as_predictions_coco17() -> None:
    gt = ground_truth(MINI / "annotations_coco17.json", "coco17")
    metric = CocoKeypointMetric("coco17")
    feed(metric, gt)
    metric.ground_truth = gt
    result = metric.compute()
    assert result["AP"] == pytest.approx(1.0) and "AP/body" not in result


def test_perturbed_coco17_equals_pycocotools(tmp_path: Path) -> None:
    ann = MINI / "annotations_coco17.json"
    gt = ground_truth(ann, "coco17")
    metric = CocoKeypointMetric("coco17")
    feed(metric, gt, noise=0.04)
    metric.ground_truth = gt
    result = metric.compute()
    path = metric.write_results(tmp_path / "results.json")
    results = json.loads(path.read_text())
    assert len(results) < 3 * 12  # the shifted duplicates were suppressed
    stats = coco_eval(load_coco(ann), results, np.asarray(load_keypoint_set("coco17").sigmas))
    assert 0.05 < result["AP"] < 0.95
    assert [result[k] for k in ("AP", "AP50", "AP75", "APm", "APl", "AR")] == pytest.approx(
        stats[:6].tolist(), abs=1e-12)


def test_perturbed_wholebody_equals_pycocotools(tmp_path: Path) -> None:
    ann = DEMO / "annotations.json"
    kset = load_keypoint_set("coco_wholebody133")
    gt = ground_truth(ann, "coco_wholebody133")
    metric = CocoKeypointMetric(kset)
    feed(metric, gt, noise=0.02, seed=1)
    metric.ground_truth = gt
    result = metric.compute()
    results = json.loads(metric.write_results(tmp_path / "results.json").read_text())
    assert set(results[0]) == {"image_id", "category_id", "keypoints", "foot_kpts", "face_kpts",
                               "lefthand_kpts", "righthand_kpts", "score"}
    # Body: the file's own `keypoints` field, as anyone would score it.
    body = coco_eval(load_coco(ann), results, np.asarray(kset.sigmas[:17]))
    assert result["AP/body"] == pytest.approx(body[0], abs=1e-12)
    # Whole body: all 133 points flattened into `keypoints`, with all sigmas.
    raw = json.loads(ann.read_text())
    fields = [f for f, _ in kset.annotation_fields]
    for a in raw["annotations"]:
        a["keypoints"] = [v for f in fields for v in a[f]]
        a["num_keypoints"] = int((np.asarray(a["keypoints"])[2::3] > 0).sum())
    flat = [{"image_id": r["image_id"], "category_id": 1, "score": r["score"],
             "keypoints": [v for f in fields for v in r[f]]} for r in results]
    whole = coco_eval(load_coco(raw), flat, np.asarray(kset.sigmas))
    assert result["AP"] == pytest.approx(whole[0], abs=1e-12)
    assert 0.0 < result["AP"] < 1.0


def test_rescoring_and_oks_nms() -> None:
    scores = rescore(np.array([0.5, 1.0]), np.array([[0.1, 0.4, 0.8], [0.1, 0.1, 0.1]]))
    np.testing.assert_allclose(scores, [0.5 * 0.6, 0.0])
    rng = np.random.default_rng(0)
    pose = rng.random((17, 2)) * 100
    poses = np.stack([pose, pose + 0.5, pose + 60])
    keep = oks_nms(poses, np.array([0.5, 0.9, 0.7]), np.full(3, 1e4),
                   np.asarray(load_keypoint_set("coco17").sigmas))
    assert keep == [1, 2]


def test_results_from_synced_states() -> None:
    gt = ground_truth(DEMO / "annotations.json", "coco_wholebody133")
    metric = CocoKeypointMetric("coco_wholebody133")
    assert metric.results() == []
    feed(metric, gt)
    expected = metric.results()
    for name in ("image_ids", "keypoints", "bbox_scores", "areas"):  # as DDP leaves them
        setattr(metric, name, torch.cat(getattr(metric, name)))
    assert metric.results() == expected
