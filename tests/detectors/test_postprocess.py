"""The shared post-processing, on hand-made boxes whose outcome can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from sapiens_kit.detectors import Detections, PostProcess
from sapiens_kit.errors import UserError

SIZE = (100, 200)  # (H, W)


def dets(rows: list[list[float]]) -> Detections:
    table = np.asarray(rows, dtype=np.float32).reshape(-1, 5)
    return Detections(table[:, :4], table[:, 4])


def off(**kwargs: object) -> PostProcess:
    """Every filter off except those given."""
    base: dict[str, object] = {"score_thr": 0.0, "nms_iou": 1.0, "min_size": 0.0,
                               "max_people": None}
    return PostProcess(**{**base, **kwargs})  # type: ignore[arg-type]


def test_detections_coerce_dtypes_and_shapes() -> None:
    det = Detections([[1, 2, 3, 4]], [1])
    assert det.boxes.dtype == det.scores.dtype == np.float32
    assert det.boxes.shape == (1, 4) and det.scores.shape == (1,) and len(det) == 1
    assert Detections.empty().boxes.shape == (0, 4)
    two = Detections([[1, 2, 3, 4], [5, 6, 7, 8]], [0.5, 0.9], "bboxes")
    picked = two.select(np.array([False, True]))
    assert picked.boxes.tolist() == [[5, 6, 7, 8]] and picked.source == "bboxes"
    assert two.select([1, 0]).scores.tolist() == pytest.approx([0.9, 0.5])
    whole = Detections.whole_image(100, 200)
    assert whole.source == "whole_image" and whole.boxes.tolist() == [[0, 0, 200, 100]]
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        Detections(np.zeros((2, 4)), np.zeros(1))
    with pytest.raises(ValueError, match="source"):
        Detections(np.zeros((0, 4)), np.zeros(0), "somewhere")


def test_score_threshold_keeps_equal_scores() -> None:
    out = off(score_thr=0.5)(dets([[0, 0, 10, 10, 0.49], [20, 0, 30, 10, 0.5],
                                   [40, 0, 50, 10, 0.9]]), SIZE)
    assert out.scores.tolist() == pytest.approx([0.9, 0.5])
    assert out.boxes[:, 0].tolist() == [40, 20]


def test_min_size_is_the_shorter_side() -> None:
    # 30x8 (shorter 8) is dropped at 10; 10x40 (shorter 10) is kept.
    out = off(min_size=10)(dets([[0, 0, 30, 8, 0.9], [50, 0, 60, 40, 0.8]]), SIZE)
    assert out.boxes.tolist() == [[50, 0, 60, 40]]


def test_boxes_are_clipped_to_the_image_before_the_size_test() -> None:
    # x2 250 -> 200 (W), y1 -5 -> 0; the box left of the image has no width once clipped.
    out = off()(dets([[150, -5, 250, 50, 0.9], [-30, 0, -10, 50, 0.8]]), SIZE)
    assert out.boxes.tolist() == [[150, 0, 200, 50]]


def test_nms_by_iou() -> None:
    # A = [0,0,10,10], B = [5,0,15,10]: intersection 50, union 150, IoU 1/3.
    rows = [[0, 0, 10, 10, 0.9], [5, 0, 15, 10, 0.8], [50, 50, 60, 60, 0.7]]
    assert len(off(nms_iou=0.3)(dets(rows), SIZE)) == 2   # 1/3 > 0.3: B suppressed
    kept = off(nms_iou=0.34)(dets(rows), SIZE)           # 1/3 < 0.34: all kept
    assert kept.scores.tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert off(nms_iou=0.3)(dets(rows), SIZE).boxes[:, 0].tolist() == [0, 50]


def test_max_people_keeps_the_best() -> None:
    rows = [[i * 20, 0, i * 20 + 10, 10, s] for i, s in enumerate([0.2, 0.9, 0.5, 0.7])]
    out = off(max_people=2)(dets(rows), SIZE)
    assert out.scores.tolist() == pytest.approx([0.9, 0.7])
    assert out.boxes[:, 0].tolist() == [20, 60]


def test_fallback_whole_image_or_skip() -> None:
    nothing = dets([[0, 0, 10, 10, 0.1]])
    whole = off(score_thr=0.5, fallback="whole_image")(nothing, SIZE)
    assert whole.source == "whole_image"
    assert whole.boxes.tolist() == [[0, 0, 200, 100]] and whole.scores.tolist() == [1.0]
    skipped = off(score_thr=0.5, fallback="skip")(nothing, SIZE)
    assert len(skipped) == 0 and skipped.source == "detector"


def test_settings_from_a_config_node_and_their_errors() -> None:
    post = PostProcess.from_cfg({"name": "x", "score_thr": 0.4, "nms_iou": 0.5, "min_size": 2,
                                 "max_people": None, "fallback": "skip", "padding": 1.25})
    assert post == PostProcess(0.4, 0.5, 2, None, "skip")
    with pytest.raises(UserError, match=r"detector.fallback='nothing' must be one of"):
        PostProcess.from_cfg({"fallback": "nothing"})
    with pytest.raises(UserError, match=r"detector\.max_people=0"):
        PostProcess.from_cfg({"max_people": 0})
    with pytest.raises(UserError, match=r"detector\.score_thr='high' must be a number"):
        PostProcess.from_cfg({"score_thr": "high"})
