"""The people found in one image, and the interface every person detector implements.

A detector turns a batch of RGB images into one :class:`Detections` per image, in pixels of
the original image. The shared steps (batching, score threshold, NMS, minimum size, maximum
number of people, the whole-image fallback) live here and in :mod:`.postprocess`, so a new
detector only implements :meth:`PersonDetector._detect_batch` (its model's forward pass).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sapiens_kit.errors import UserError

if TYPE_CHECKING:
    import torch

    from sapiens_kit.detectors.postprocess import PostProcess

#: Where a :class:`Detections` came from.
SOURCES = ("detector", "bboxes", "whole_image")


@dataclass
class Detections:
    """The people found in one image.

    Attributes:
        boxes: ``(N, 4)`` float32 ``x1 y1 x2 y2`` in pixels of the original image.
        scores: ``(N,)`` float32 box scores, highest first for detector output.
        source: ``"detector"``, ``"bboxes"`` (a user's box file) or ``"whole_image"`` (nothing
            found, or ``detector=none``).
    """

    boxes: np.ndarray
    scores: np.ndarray
    source: str = "detector"

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(self.boxes) != len(self.scores):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.scores)} scores")
        if self.source not in SOURCES:
            raise ValueError(f"source {self.source!r} is not one of {SOURCES}")

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, index: np.ndarray | Sequence[int] | slice) -> Detections:
        """The detections at ``index`` (indices, a boolean mask or a slice), same source."""
        return Detections(self.boxes[index], self.scores[index], self.source)

    @classmethod
    def whole_image(cls, height: int, width: int) -> Detections:
        """One box covering the image, score 1 (what pose used before there were detectors)."""
        return cls(np.array([[0.0, 0.0, width, height]]), np.ones(1), "whole_image")

    @classmethod
    def empty(cls, source: str = "detector") -> Detections:
        """No people."""
        return cls(np.zeros((0, 4)), np.zeros(0), source)


class PersonDetector(ABC):
    """Finds people in batches of images; see :func:`sapiens_kit.detectors.build_detector`.

    Subclasses run their model in :meth:`_detect_batch` and return raw boxes; :meth:`detect`
    batches the images and applies :attr:`post` (the configured filters and fallback) to each.

    Args:
        post: The post-processing settings (score threshold, NMS, ... and fallback).
        batch_size: Images per forward pass.
    """

    #: The registry name (``detector.name``).
    name: str = ""

    def __init__(self, post: PostProcess, batch_size: int = 1) -> None:
        if int(batch_size) < 1:
            raise UserError(f"detector.batch_size={batch_size} must be at least 1")
        self.post = post
        self.batch_size = int(batch_size)
        self.device: torch.device | str = "cpu"

    def detect(self, images: Sequence[np.ndarray], names: Sequence[str]) -> list[Detections]:
        """One :class:`Detections` per image, filtered and with the fallback applied.

        Args:
            images: RGB uint8 ``(H, W, 3)`` arrays at their original resolution.
            names: The input file paths, used by the box-file detector to look boxes up.
        """
        if len(images) != len(names):
            raise ValueError(f"{len(images)} images but {len(names)} names")
        for image, name in zip(images, names, strict=True):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"{name}: expected an RGB uint8 (H, W, 3) image, got "
                                 f"{image.dtype} {image.shape}")
        out: list[Detections] = []
        for start in range(0, len(images), self.batch_size):
            batch = list(images[start:start + self.batch_size])
            raw = self._detect_batch(batch, list(names[start:start + self.batch_size]))
            out += [self._finish(det, image.shape[:2]) for det, image in zip(raw, batch,
                                                                              strict=True)]
        return out

    def _finish(self, raw: Detections, size: tuple[int, int]) -> Detections:
        """Filters then fallback; detectors whose boxes are used as given override this."""
        return self.post(raw, size)

    @abstractmethod
    def _detect_batch(self, images: list[np.ndarray], names: list[str]) -> list[Detections]:
        """Raw detections (people only, original pixels) for at most ``batch_size`` images."""

    def check_inputs(self, names: Sequence[str]) -> None:
        """Called once with every input path before detection; raises
        :class:`~sapiens_kit.errors.UserError` when the inputs cannot work with this detector
        (the box-file detector: no box matches any input). Nothing to check by default."""
        return None

    def to(self, device: Any) -> PersonDetector:
        """Move the model (if any) to ``device``; returns ``self``."""
        import torch

        self.device = torch.device(device)
        self._move(self.device)
        return self

    def _move(self, device: torch.device) -> None:
        """Move the model's weights; detectors without a model have nothing to move."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={self.batch_size}, post={self.post})"


__all__ = ["SOURCES", "Detections", "PersonDetector"]
