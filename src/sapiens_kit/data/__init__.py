"""Datasets, data modules, transforms, dense targets and class/keypoint vocabularies.

The data modules are listed once, in :mod:`sapiens_kit.data.datamodules`; this package
re-exports that list.
"""

from sapiens_kit.data import datamodules
from sapiens_kit.data.datamodules import *  # noqa: F403

__all__ = list(datamodules.__all__)
