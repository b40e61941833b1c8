"""Person detectors for top-down prediction: ``detector=rtdetr|torchvision|detr|none`` or
``bboxes=<file>``.

``build_detector(cfg)`` turns the ``detector`` config group into a :class:`PersonDetector`, whose
``detect(images, names)`` returns one :class:`Detections` per image (boxes in original pixels,
filtered, with the whole-image fallback). See ``docs/detectors.md``.
"""

from __future__ import annotations

from sapiens_kit.detectors.base import Detections, PersonDetector
from sapiens_kit.detectors.bboxes import BoxFile, BoxFileDetector, read_box_file
from sapiens_kit.detectors.postprocess import PostProcess
from sapiens_kit.detectors.registry import DETECTORS, build_detector, list_detectors

__all__ = [
    "DETECTORS",
    "BoxFile",
    "BoxFileDetector",
    "Detections",
    "PersonDetector",
    "PostProcess",
    "build_detector",
    "list_detectors",
    "read_box_file",
]
