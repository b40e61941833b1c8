"""``detector=rtdetr``: RT-DETR through transformers (Apache-2.0), the default person detector.

Real-time DETR (Zhao et al., "DETRs Beat YOLOs on Real-time Object Detection", CVPR 2024): an
NMS-free COCO detector that is fast on GPUs and needs nothing beyond transformers (no mmdet/mmcv,
the official demos' install burden). Default weights: ``PekingU/rtdetr_r50vd`` (see
``conf/detector/rtdetr.yaml``). Its 80 COCO classes start with ``person`` (index 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sapiens_kit.detectors.hf import HFDetector, HFFamily, build_hf, coco_categories
from sapiens_kit.detectors.postprocess import PostProcess


def coco80_labels() -> dict[int, str]:
    """RT-DETR's ``id2label``: the 80 used COCO categories, contiguous from 0 (``person``)."""
    names = [n for n in coco_categories() if n not in ("__background__", "N/A")]
    return dict(enumerate(names))


#: The ``PekingU/rtdetr_r50vd`` architecture is the config class's default one.
FAMILY = HFFamily(
    name="rtdetr",
    model_class="RTDetrForObjectDetection",
    config_class="RTDetrConfig",
    processor_class="RTDetrImageProcessor",
    labels=coco80_labels,
)


def build(cfg: Mapping[str, Any], post: PostProcess) -> HFDetector:
    """The RT-DETR detector of a ``detector`` config node."""
    return build_hf(FAMILY, cfg, post)


__all__ = ["FAMILY", "build", "coco80_labels"]
