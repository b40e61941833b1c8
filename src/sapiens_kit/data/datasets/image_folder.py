"""Plain image lists for prediction."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from sapiens_kit.data.io import read_rgb


class ImageListDataset(Dataset):
    """Images stretched to the model size, with their path and original size in ``meta``.

    This is the official whole-image inference of the dense tasks (no aspect kept).
    """

    def __init__(self, paths: Sequence[Path], img_size: tuple[int, int]) -> None:
        self.paths = list(paths)
        self.img_size = tuple(img_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        image = read_rgb(path)
        resized = cv2.resize(image, (self.img_size[1], self.img_size[0]),
                             interpolation=cv2.INTER_LINEAR)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1))),
            "meta": {"path": str(path), "orig_size": tuple(image.shape[:2])},
        }
