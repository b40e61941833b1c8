"""Datasets returning dict samples with the kit's fixed keys."""

from sapiens_kit.data.datasets.coco_keypoints import CocoKeypoints
from sapiens_kit.data.datasets.dense_folder import DenseFolder
from sapiens_kit.data.datasets.mask_folder import MaskFolder
from sapiens_kit.data.datasets.predict_inputs import (
    ForegroundImageList,
    ImageListDataset,
    PersonCrops,
)

__all__ = ["CocoKeypoints", "DenseFolder", "ForegroundImageList", "ImageListDataset",
           "MaskFolder", "PersonCrops"]
