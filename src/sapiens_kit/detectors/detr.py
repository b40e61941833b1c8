"""``detector=detr``: DETR through transformers, the detector the Sapiens2 demos use.

``facebook/detr-resnet-101-dc5`` (Carion et al., "End-to-End Object Detection with Transformers",
ECCV 2020; Apache-2.0): ResNet-101 with a dilated last stage, 91 COCO category ids with
``person`` at id 1. Slower than RT-DETR; choose it to match Sapiens2's published pipeline.
Its timm backbone is built without ImageNet weights (the checkpoint carries them), so loading
downloads nothing beyond the repository.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sapiens_kit.detectors.hf import HFDetector, HFFamily, build_hf, coco_categories
from sapiens_kit.detectors.postprocess import PostProcess


def coco91_labels() -> dict[int, str]:
    """DETR's ``id2label``: the 91 COCO category ids (``N/A`` for unused ones, 1 ``person``)."""
    names = coco_categories()
    names[0] = "N/A"
    return dict(enumerate(names))


FAMILY = HFFamily(
    name="detr",
    model_class="DetrForObjectDetection",
    config_class="DetrConfig",
    processor_class="DetrImageProcessor",
    labels=coco91_labels,
    # facebook/detr-resnet-101-dc5's architecture.
    config={"backbone": "resnet101", "dilation": True},
    person=1,
    sigmoid=False,
)


def build(cfg: Mapping[str, Any], post: PostProcess) -> HFDetector:
    """The DETR detector of a ``detector`` config node."""
    return build_hf(FAMILY, cfg, post)


__all__ = ["FAMILY", "build", "coco91_labels"]
