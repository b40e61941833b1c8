"""Lightning data modules."""

from sapiens_kit.data.datamodules.base import BaseDataModule
from sapiens_kit.data.datamodules.coco_keypoints import CocoKeypointDataModule
from sapiens_kit.data.datamodules.dense_folder import DenseFolderDataModule
from sapiens_kit.data.datamodules.hf_datasets import HFDatasetDataModule
from sapiens_kit.data.datamodules.mask_folder import MaskFolderDataModule

__all__ = [
    "BaseDataModule",
    "CocoKeypointDataModule",
    "DenseFolderDataModule",
    "HFDatasetDataModule",
    "MaskFolderDataModule",
]
