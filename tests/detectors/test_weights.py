"""Detector weights from a local file, a save_pretrained folder and the Hugging Face cache give
the same detections as the model they were saved from; files that do not fit are one error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sapiens_kit.detectors import Detections, build_detector
from sapiens_kit.detectors.tiny import tiny_detector_cfg
from sapiens_kit.errors import UserError
from tests.helpers import SHARED_DATA

IMAGES = sorted((SHARED_DATA / "coco_wholebody_mini" / "images").glob("*.jpg"))[:2]
ALL = {"nms_iou": 1.0, "max_people": None, "fallback": "skip"}


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    import cv2

    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in IMAGES]


def detect(cfg: dict[str, Any], photos: list[np.ndarray]) -> list[Detections]:
    return build_detector(cfg).detect(photos, [str(p) for p in IMAGES])


def assert_same(a: list[Detections], b: list[Detections]) -> None:
    for x, y in zip(a, b, strict=True):
        assert len(x) > 0 and x.source == y.source
        np.testing.assert_array_equal(x.boxes, y.boxes)
        np.testing.assert_array_equal(x.scores, y.scores)


def randomise(model: torch.nn.Module) -> None:
    """New random values everywhere, so a load that silently kept the initial weights of a
    freshly built model would show."""
    with torch.no_grad():
        for p in model.state_dict().values():
            if p.is_floating_point():
                p.add_(torch.randn_like(p) * 0.01)


@pytest.mark.parametrize(("name", "suffix"), [("rtdetr", ".pth"), ("detr", ".pth"),
                                              ("torchvision", ".safetensors")])
def test_a_weights_file_round_trip(tmp_path: Path, photos: list[np.ndarray], name: str,
                                   suffix: str) -> None:
    source = build_detector(tiny_detector_cfg(name, **ALL))
    randomise(source.model)
    expected = source.detect(photos, [str(p) for p in IMAGES])
    path = tmp_path / f"detector{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, str(path))
    else:
        torch.save({"model": source.model.state_dict()}, path)
    assert_same(detect(tiny_detector_cfg(name, weights=str(path), **ALL), photos), expected)


def test_a_save_pretrained_folder_and_the_hub_cache(tmp_path: Path,
                                                    photos: list[np.ndarray]) -> None:
    from huggingface_hub import constants

    source = build_detector(tiny_detector_cfg("rtdetr", **ALL))
    randomise(source.model)
    expected = source.detect(photos, [str(p) for p in IMAGES])
    folder = tmp_path / "saved"
    source.model.save_pretrained(folder)
    source.processor.save_pretrained(folder)
    # A folder carries its own architecture and processor: no config/processor overrides.
    plain = {**tiny_detector_cfg("rtdetr", **ALL), "config": {}, "processor": {}}
    assert_same(detect({**plain, "weights": str(folder)}, photos), expected)
    # The same files as the HF cache holds a downloaded repository (offline: no network).
    repo = Path(constants.HF_HUB_CACHE) / "models--PekingU--rtdetr_r50vd"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots").mkdir()
    folder.rename(repo / "snapshots" / ("0" * 40))
    assert_same(detect({**plain, "weights": "PekingU/rtdetr_r50vd"}, photos), expected)


def test_a_torch_hub_cache_file_is_read_without_network(tmp_path: Path) -> None:
    from sapiens_kit.detectors.weights import from_torch_hub

    cache = Path(torch.hub.get_dir()) / "checkpoints"
    cache.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.ones(2)}, cache / "tiny-0123.pth")
    found = from_torch_hub("https://download.invalid/models/tiny-0123.pth")
    assert torch.equal(found["w"], torch.ones(2))


def test_weights_that_do_not_fit_or_do_not_exist(tmp_path: Path) -> None:
    other = build_detector(tiny_detector_cfg("detr"))
    path = tmp_path / "detr.pth"
    torch.save(other.model.state_dict(), path)
    with pytest.raises(UserError, match=r"detector.weights=.*detr.pth: does not fit this "
                                        r"detector's architecture .*detector.config"):
        build_detector(tiny_detector_cfg("rtdetr", weights=str(path)))
    with pytest.raises(UserError, match="no such file or folder"):
        build_detector(tiny_detector_cfg("rtdetr", weights=str(tmp_path / "missing.pth")))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read it as weights"):
        build_detector(tiny_detector_cfg("torchvision", weights=str(tmp_path / "junk.pth")))
    with pytest.raises(UserError, match="torchvision weights are one of COCO_V1, DEFAULT"):
        build_detector(tiny_detector_cfg("torchvision", weights="IMAGENET"))
