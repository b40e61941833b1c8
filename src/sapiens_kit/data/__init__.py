"""Datasets, data modules, transforms and class/keypoint vocabularies."""

from sapiens_kit.data.datamodules import (
    BaseDataModule,
    CocoKeypointDataModule,
    DenseFolderDataModule,
    HFDatasetDataModule,
    MaskFolderDataModule,
)

__all__ = [
    "BaseDataModule",
    "CocoKeypointDataModule",
    "DenseFolderDataModule",
    "HFDatasetDataModule",
    "MaskFolderDataModule",
]
