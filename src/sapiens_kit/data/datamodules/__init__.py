"""Lightning data modules."""

from sapiens_kit.data.datamodules.base import BaseDataModule
from sapiens_kit.data.datamodules.mask_folder import MaskFolderDataModule

__all__ = ["BaseDataModule", "MaskFolderDataModule"]
