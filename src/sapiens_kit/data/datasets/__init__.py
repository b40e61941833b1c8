"""Datasets returning dict samples with the kit's fixed keys."""

from sapiens_kit.data.datasets.coco_keypoints import CocoKeypoints, PersonCrops
from sapiens_kit.data.datasets.dense_folder import DenseFolder
from sapiens_kit.data.datasets.mask_folder import MaskFolder

__all__ = ["CocoKeypoints", "DenseFolder", "MaskFolder", "PersonCrops"]
