"""Datasets, data modules, transforms and class/keypoint vocabularies."""

from sapiens_kit.data.datamodules import BaseDataModule, MaskFolderDataModule

__all__ = ["BaseDataModule", "MaskFolderDataModule"]
