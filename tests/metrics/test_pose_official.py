"""Pose AP equals the official numbers without xtcocotools installed: the cases of
``test_pose_reference.py`` against the values xtcocotools gave for them, and hand-computed cases
for each step where pycocotools or a float64 rescoring would differ."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sapiens_kit.data.datasets import CocoKeypoints
from sapiens_kit.data.keypoints import load_keypoint_set
from sapiens_kit.metrics import CocoKeypointMetric
from sapiens_kit.metrics.pose import oks_nms, rescore
from tests.helpers import SHARED_DATA
from tests.metrics.pose_reference import (
    CASES,
    GOLDEN,
    MINI_FILES,
    case_file,
    ids_from_zero,
    kit_metrics,
    make_predictions,
)

MINI = SHARED_DATA / "coco_wholebody_mini"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", list(MINI_FILES))
def test_kit_equals_recorded_official_numbers(name: str, case: str, tmp_path: Path) -> None:
    path, data, pred_case = case_file(MINI, name, case, tmp_path)
    kset_name = MINI_FILES[name][1]
    preds = make_predictions(data, load_keypoint_set(kset_name), pred_case, seed=3)
    kit = kit_metrics(path, MINI / "images", preds, kset_name)
    assert kit == pytest.approx(json.loads(GOLDEN.read_text())[f"{name}/{case}"], abs=1e-6, rel=0)


@pytest.mark.parametrize(("fname", "kset_name"), [("annotations_coco17.json", "coco17"),
                                                  ("annotations.json", "coco_wholebody133")])
def test_ids_from_zero_ground_truth_as_predictions_scores_one(
        fname: str, kset_name: str, tmp_path: Path) -> None:
    """pycocotools reads a match to annotation id 0 as "unmatched" (APl was 0.73 here)."""
    path = tmp_path / fname
    path.write_text(json.dumps(ids_from_zero(json.loads((MINI / fname).read_text()))))
    data = json.loads(path.read_text())
    preds = make_predictions(data, load_keypoint_set(kset_name), "exact")
    result = kit_metrics(path, MINI / "images", preds, kset_name, with_ids=False)
    assert min(result.values()) == 1.0, result


def _one_person(tmp_path: Path) -> tuple[dict, np.ndarray]:
    ann = json.loads((MINI / "annotations_coco17.json").read_text())["annotations"][0]
    gt = CocoKeypoints(MINI / "annotations_coco17.json", MINI / "images",
                       "coco17").coco_ground_truth()
    gt = {**gt, "annotations": [a for a in gt["annotations"] if a["id"] == ann["id"]]}
    return gt, np.asarray(ann["keypoints"], np.float32).reshape(17, 3)


def test_tied_instance_scores_rank_the_later_instance_first(tmp_path: Path) -> None:
    """Two kept poses with the same score, the right one added first: mmpose orders ties by
    reversed argsort, so the stray one ranks first and AP is 0.5 (a stable order gives 1.0)."""
    gt, kps = _one_person(tmp_path)
    image = gt["annotations"][0]["image_id"]
    metric = CocoKeypointMetric("coco17")
    for xy in (kps[:, :2], kps[:, :2] + 300):  # no ids: instances count in the order added
        metric.update(torch.tensor([image]), torch.tensor(xy[None]), torch.full((1, 17), 0.5),
                      torch.tensor([1.0]), torch.tensor([1e4]))
    metric.ground_truth = gt
    result = metric.compute()
    assert result["AP"] == pytest.approx(0.5) and result["AR"] == pytest.approx(1.0)


def test_repeated_instances_count_once() -> None:
    """A distributed sampler pads with repeats; they share an id and count once, also without
    OKS-NMS (mmpose de-duplicates by id first)."""
    gt = CocoKeypoints(MINI / "annotations_coco17.json", MINI / "images",
                       "coco17").coco_ground_truth()
    metrics = [CocoKeypointMetric("coco17", nms_mode="none") for _ in range(2)]
    rng = np.random.default_rng(0)
    for ann in gt["annotations"]:
        kps = np.asarray(ann["keypoints"], np.float32).reshape(17, 3)
        xy = kps[:, :2] + rng.normal(0, 3, (17, 2)).astype(np.float32)
        args = (torch.tensor([ann["image_id"]]), torch.tensor(xy[None]),
                torch.rand(1, 17), torch.tensor([1.0]), torch.tensor([1e4]),
                torch.tensor([ann["id"]]))
        for metric in metrics:
            metric.update(*args)
        metrics[1].update(*args)  # the padding repeat
    for metric in metrics:
        metric.ground_truth = gt
    assert metrics[1].results() == metrics[0].results()
    assert metrics[1].compute() == metrics[0].compute()


def test_rescoring_threshold_and_empty_mean_in_float32() -> None:
    """A score equal to 0.2 (as float32) is not above the float32 threshold; no point above it
    gives an instance score of 0."""
    point_scores = np.array([[0.2, 0.4, 0.6], [0.2, 0.1, 0.0]], np.float32).astype(np.float64)
    scores = rescore(np.array([1.0, 0.5]), point_scores)  # float32 values, even in float64
    assert scores.dtype == np.float32
    assert scores.tolist() == [np.float32(0.5), 0.0]


def test_oks_nms_ties_and_threshold() -> None:
    sigmas = np.asarray(load_keypoint_set("coco17").sigmas)
    pose = np.random.default_rng(0).random((17, 3)) * 100
    poses = np.stack([pose, pose + 0.5, pose + 60, pose])
    scores = np.array([0.5, 0.9, 0.7, 0.9])
    first = int(np.argsort(scores.astype(np.float32))[::-1][0])  # mmpose's rule for the tie
    assert first in (1, 3)
    keep = oks_nms(poses, scores, np.full(4, 1e4), sigmas)
    assert keep == [first, 2]  # the winner of the tie suppresses the other 0.9 and 0.5 ones
