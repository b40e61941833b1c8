"""``bboxes=<file>``: the three file layouts, their matching rules, boxes used as given, and the
errors (a file matching no input, malformed files), on the real COCO photos and their labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sapiens_kit.detectors import BoxFileDetector, build_detector, read_box_file
from sapiens_kit.detectors.tiny import tiny_detector_cfg
from sapiens_kit.errors import UserError, user_errors
from tests.helpers import SHARED_DATA

DATA = SHARED_DATA / "coco_wholebody_mini"
IMAGES = sorted((DATA / "images").glob("*.jpg"))
#: People per photo in the COCO labels (no crowd boxes among them).
PEOPLE = {"000000000785.jpg": 1, "000000040083.jpg": 3, "000000196141.jpg": 5,
          "000000197388.jpg": 5}


def blank(path: Path) -> np.ndarray:
    """A stand-in image of ``path``'s size (box files never look at pixels)."""
    import cv2

    height, width = cv2.imread(str(path)).shape[:2]
    return np.zeros((height, width, 3), np.uint8)


def write(tmp_path: Path, data: object, name: str = "boxes.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def detector(path: Path, **cfg: object) -> BoxFileDetector:
    # The configured detector (rtdetr) is replaced by the box file: nothing is loaded.
    found = build_detector({"name": "rtdetr", **cfg}, bboxes=path)
    assert isinstance(found, BoxFileDetector)
    return found


def test_annotation_file_matches_by_file_name() -> None:
    det = detector(DATA / "annotations_coco17.json")
    out = det.detect([blank(p) for p in IMAGES], [str(p) for p in IMAGES])
    assert {p.name: len(d) for p, d in zip(IMAGES, out, strict=True)} == PEOPLE
    assert all(d.source == "bboxes" for d in out)
    # x, y, w, h -> x1 y1 x2 y2, as given (the first person of 000000000785).
    assert out[0].boxes[0] == pytest.approx([280.79, 44.73, 280.79 + 218.7, 44.73 + 346.68])
    assert out[0].boxes.dtype == np.float32 and out[0].scores.tolist() == [1.0]


def test_results_list_matches_numeric_stems_and_keeps_every_score(tmp_path: Path) -> None:
    path = write(tmp_path, [
        {"image_id": 785, "category_id": 1, "bbox": [10, 20, 30, 40], "score": 0.01},
        {"image_id": 785, "category_id": 1, "bbox": [11, 21, 30, 40], "score": 0.02},
        {"image_id": 785, "category_id": 2, "bbox": [0, 0, 5, 5], "score": 0.9},  # not person
        {"image_id": 40083, "bbox": [0, 0, 0, 5], "score": 0.9},  # no width: unusable
    ])
    det = detector(path, score_thr=0.5, nms_iou=0.1, max_people=1)  # ignored for given boxes
    out = det.detect([blank(IMAGES[0]), blank(IMAGES[1])], [str(IMAGES[0]), str(IMAGES[1])])
    assert out[0].boxes.tolist() == [[10, 20, 40, 60], [11, 21, 41, 61]]
    assert out[0].scores.tolist() == pytest.approx([0.01, 0.02])
    assert out[1].source == "whole_image"  # nothing usable for 40083: the fallback


def test_map_matches_by_name_or_stem(tmp_path: Path) -> None:
    path = write(tmp_path, {"000000000785.jpg": [[1, 2, 3, 4, 0.5]],
                            "000000040083": [[5, 6, 7, 8]]})
    out = detector(path).detect([blank(p) for p in IMAGES[:3]], [str(p) for p in IMAGES[:3]])
    assert out[0].boxes.tolist() == [[1, 2, 4, 6]] and out[0].scores.tolist() == [0.5]
    assert out[1].boxes.tolist() == [[5, 6, 12, 14]] and out[1].scores.tolist() == [1.0]
    assert out[2].source == "whole_image"


def test_unmatched_inputs_take_the_configured_fallback(tmp_path: Path) -> None:
    path = write(tmp_path, {"000000000785.jpg": [[1, 2, 3, 4]]})
    out = detector(path, fallback="skip").detect([blank(IMAGES[1])], [str(IMAGES[1])])
    assert len(out[0]) == 0


def test_a_file_matching_no_input_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, [{"image_id": 1, "bbox": [0, 0, 10, 10]}])
    det = detector(path)
    with pytest.raises(UserError, match=r"bboxes=.*boxes.json: no box matches any of the 4 "
                                        r"inputs \(matched by image_id = numeric file stem"):
        det.check_inputs([str(p) for p in IMAGES])
    det.check_inputs([str(p) for p in IMAGES] + ["/photos/000000000001.jpg"])  # one is enough


@pytest.mark.parametrize(("data", "message"), [
    ([{"bbox": [0, 0, 1, 1]}], "needs 'image_id' and 'bbox'"),
    ([{"image_id": 1, "bbox": [0, 0, 1]}], r"must be \[x, y, w, h\]"),
    ({"a.jpg": [["x", 0, 1, 1]]}, "is not numbers"),
    ({"a.jpg": [0, 0, 1, 1]}, r"must be \[x, y, w, h\]"),
    ({"a.jpg": 3}, "must map to a list"),
    (7, "not a COCO detection list"),
])
def test_malformed_files(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(UserError, match=message):
        read_box_file(write(tmp_path, data))


def test_missing_or_broken_files_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(user_errors(), match="does not exist"):
        read_box_file(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(user_errors(), match="not valid JSON"):
        read_box_file(tmp_path / "bad.json")


def test_bboxes_replace_any_configured_detector(tmp_path: Path) -> None:
    path = write(tmp_path, {"a.jpg": [[1, 2, 3, 4]]})
    for name in ("rtdetr", "torchvision", "detr", "none"):
        assert isinstance(build_detector(tiny_detector_cfg(name), bboxes=path), BoxFileDetector)
