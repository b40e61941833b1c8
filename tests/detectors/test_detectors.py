"""The model detectors (rtdetr, detr, torchvision) and ``none``, as small random models on the
real multi-person COCO photos: what they return, batching, the person class, weights from files,
folders and the Hugging Face cache, and the errors (unknown name, weights missing offline)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from sapiens_kit.detectors import Detections, build_detector, list_detectors
from sapiens_kit.detectors.tiny import tiny_detector_cfg
from sapiens_kit.errors import UserError
from tests.helpers import REPO, SHARED_DATA

CONF = REPO / "src" / "sapiens_kit" / "conf" / "detector"

IMAGES = sorted((SHARED_DATA / "coco_wholebody_mini" / "images").glob("*.jpg"))
MODELS = ("rtdetr", "detr", "torchvision")
#: Every box the random model gives, so the checks below see many.
ALL = {"nms_iou": 1.0, "max_people": None, "fallback": "skip"}


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    import cv2

    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in IMAGES]


def names() -> list[str]:
    return [str(p) for p in IMAGES]


def run(cfg: dict[str, Any], photos: list[np.ndarray]) -> list[Detections]:
    return build_detector(cfg).detect(photos, names())


def assert_same(a: list[Detections], b: list[Detections]) -> None:
    """Bitwise the same detections."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.source == y.source
        np.testing.assert_array_equal(x.boxes, y.boxes)
        np.testing.assert_array_equal(x.scores, y.scores)


@pytest.mark.parametrize("name", MODELS)
def test_people_in_original_pixels(name: str, photos: list[np.ndarray]) -> None:
    detector = build_detector(tiny_detector_cfg(name, **ALL))
    assert detector.name == name and not detector.model.training
    out = detector.detect(photos, names())
    assert len(out) == len(photos)
    for det, image in zip(out, photos, strict=True):
        height, width = image.shape[:2]
        assert len(det) > 0 and det.source == "detector"
        assert det.boxes.dtype == det.scores.dtype == np.float32
        assert det.boxes.shape == (len(det), 4) and det.scores.shape == (len(det),)
        assert (det.boxes[:, 0::2] >= 0).all() and (det.boxes[:, 0::2] <= width).all()
        assert (det.boxes[:, 1::2] >= 0).all() and (det.boxes[:, 1::2] <= height).all()
        assert (det.boxes[:, 2:] > det.boxes[:, :2]).all()
        assert ((det.scores >= 0) & (det.scores <= 1)).all()
        assert (np.diff(det.scores) <= 0).all(), "best first"


@pytest.mark.parametrize("name", ["rtdetr", "detr"])
def test_person_boxes_include_the_processors_own(name: str, photos: list[np.ndarray]) -> None:
    """Every box the transformers post-processing labels ``person`` is among ours, with the
    same score (ours also keeps queries whose person score passes but another class wins)."""
    detector = build_detector(tiny_detector_cfg(name, **ALL))
    ours = detector.detect(photos, names())
    inputs = detector.processor(images=photos, return_tensors="pt")
    with torch.inference_mode():
        outputs = detector.model(**inputs)
    theirs = detector.processor.post_process_object_detection(
        outputs, threshold=0.0, target_sizes=[p.shape[:2] for p in photos])
    seen = 0
    for mine, result in zip(ours, theirs, strict=True):
        person = result["labels"] == detector.person
        for box, score in zip(result["boxes"][person].numpy(), result["scores"][person].numpy(),
                              strict=True):
            match = np.abs(mine.boxes - box).max(axis=1) < 1e-2
            assert match.any() and np.isclose(mine.scores[match], score, atol=1e-5).any()
            seen += 1
    assert detector.person == (1 if name == "detr" else 0)
    if name == "rtdetr":
        assert seen > 0  # focal-loss top-k keeps person pairs of a random model too


def test_images_go_in_batches_and_come_back_in_order(photos: list[np.ndarray]) -> None:
    from sapiens_kit.detectors import PersonDetector, PostProcess

    class Recorder(PersonDetector):
        """One box per image whose width is the image's index; records the batches."""

        def __init__(self) -> None:
            super().__init__(PostProcess(score_thr=0.0), batch_size=3)
            self.batches: list[list[str]] = []

        def _detect_batch(self, images: list[np.ndarray], names: list[str]) -> list[Detections]:
            self.batches.append(names)
            return [Detections([[0, 0, 1 + IMAGES.index(Path(n)), 5]], [0.5]) for n in names]

    recorder = Recorder()
    out = recorder.detect(photos, names())
    assert recorder.batches == [names()[:3], names()[3:]]
    assert [d.boxes[0, 2] for d in out] == [1, 2, 3, 4]
    assert recorder.to("cpu") is recorder and recorder.device == torch.device("cpu")


def test_filters_apply_to_model_output(photos: list[np.ndarray]) -> None:
    out = run(tiny_detector_cfg("rtdetr", max_people=3, nms_iou=0.5), photos)
    assert all(1 <= len(d) <= 3 for d in out)
    whole = run(tiny_detector_cfg("rtdetr", score_thr=1.1), photos)
    assert [d.source for d in whole] == ["whole_image"] * len(photos)
    assert whole[1].boxes.tolist() == [[0, 0, photos[1].shape[1], photos[1].shape[0]]]


def test_none_is_the_whole_image(photos: list[np.ndarray]) -> None:
    out = run({"name": "none", "batch_size": 3}, photos)
    for det, image in zip(out, photos, strict=True):
        assert det.source == "whole_image"
        assert det.boxes.tolist() == [[0, 0, image.shape[1], image.shape[0]]]
    assert build_detector(None).name == "none"


def test_bad_images_and_names() -> None:
    detector = build_detector({"name": "none"})
    with pytest.raises(ValueError, match="RGB uint8"):
        detector.detect([np.zeros((4, 4), np.uint8)], ["a.jpg"])
    with pytest.raises(ValueError, match="1 images but 2 names"):
        detector.detect([np.zeros((4, 4, 3), np.uint8)], ["a.jpg", "b.jpg"])


def test_unknown_detector_lists_the_names() -> None:
    with pytest.raises(UserError, match="detector=yolo: no such detector; choose one of "
                                        "rtdetr, torchvision, detr, none"):
        build_detector({"name": "yolo"})
    assert list_detectors() == ["rtdetr", "torchvision", "detr", "none"]


@pytest.mark.parametrize(("name", "names_file"), [
    ("rtdetr", "'PekingU/rtdetr_r50vd'"),
    ("detr", "'facebook/detr-resnet-101-dc5'"),
    ("torchvision", "'fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth'"),
])
def test_missing_weights_offline_fail_fast_and_say_how(name: str, names_file: str) -> None:
    """The shipped config with nothing cached (the tests' caches are empty, HF_HUB_OFFLINE is
    set for the hub, and the torchvision download host is unreachable here or answers)."""
    import torchvision  # noqa: F401 - imported before the clock starts
    import transformers  # noqa: F401

    shipped = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    start = time.perf_counter()
    with pytest.raises(UserError) as err:
        build_detector(shipped)
    assert time.perf_counter() - start < 10, "offline must fail in seconds"
    message = str(err.value)
    assert names_file in message and "\n" not in message
    assert "`detector.weights=<path>`" in message and "`detector=none`" in message


def test_every_detector_config_has_the_agreed_keys() -> None:
    agreed = {"name", "weights", "score_thr", "nms_iou", "min_size", "padding", "max_people",
              "fallback", "batch_size", "config"}
    files = sorted(CONF.glob("*.yaml"))
    assert [f.stem for f in files] == sorted(list_detectors())
    for path in files:
        node = yaml.safe_load(path.read_text())
        assert node["name"] == path.stem
        assert agreed <= set(node) <= agreed | {"processor"}, path.name
        assert node["padding"] == 1.25 and node["fallback"] == "whole_image"


def test_the_documented_command_line_overrides_compose() -> None:
    """``detector.config={...}`` replaces the whole node (the files say ``null``, which Hydra
    lets a mapping replace; ``{}`` would refuse new keys)."""
    from hydra import compose, initialize_config_dir

    predict = yaml.safe_load((CONF.parent / "predict.yaml").read_text())
    in_defaults = any(isinstance(d, dict) and "detector" in d for d in predict["defaults"])
    group = "detector=torchvision" if in_defaults else "+detector=torchvision"
    with initialize_config_dir(config_dir=str(CONF.parent), version_base="1.3"):
        cfg = compose("predict", overrides=[
            group, "input=x.jpg", "detector.weights=null", "detector.score_thr=0",
            "detector.config={backbone: resnet18, min_size: 128, max_size: 160}"])
    detector = build_detector(cfg.detector)
    assert detector.name == "torchvision" and detector.post.score_thr == 0
    assert detector.model.transform.min_size == (128,)


def test_the_processor_reads_uint8_tensors_as_it_reads_arrays(photos: list[np.ndarray]) -> None:
    """The detector hands its processor CHW uint8 tensors (so a GPU can resize them); the
    result is the processor's own on the HWC arrays."""
    for name in ("rtdetr", "detr"):
        processor = build_detector(tiny_detector_cfg(name)).processor
        arrays = processor(images=photos, return_tensors="pt", input_data_format="channels_last")
        tensors = processor(images=[torch.from_numpy(p).permute(2, 0, 1) for p in photos],
                            return_tensors="pt", input_data_format="channels_first")
        assert arrays.keys() == tensors.keys()
        for key in arrays:
            assert torch.equal(arrays[key], tensors[key]), (name, key)
