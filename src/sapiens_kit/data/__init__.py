"""Datasets, data modules, transforms and class/keypoint vocabularies."""

from sapiens_kit.data.datamodules import (
    BaseDataModule,
    DenseFolderDataModule,
    MaskFolderDataModule,
)

__all__ = ["BaseDataModule", "DenseFolderDataModule", "MaskFolderDataModule"]
