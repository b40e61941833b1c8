"""SapiensModel: normalise -> backbone -> head, the plain torch model of every task.

The Lightning task (``tasks/base.py``) and the exported model (``export.ExportModel``) both run
this module, so what is trained is what is exported (anomalib's ``torch_model.py``).

Two choices keep checkpoints written by earlier versions loading unchanged:

- The task registers ``backbone`` and ``head`` as its own children (state-dict keys
  ``backbone.*``, ``head.*``) and holds a SapiensModel that *shares* those two modules without
  being registered itself, so no parameter appears twice and no ``model.`` prefix is added.
- The normalisation constants are plain Python floats turned into float32 tensors per device, not
  buffers: FSDP mixed precision and ``bf16-true`` cast buffers, which would round 123.675 to
  123.5 and shift every input. They are applied to the input in float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class SapiensModel(nn.Module):
    """``head(backbone(normalize(images)))`` for 0-255 RGB images.

    Args:
        backbone: A registered backbone (``(B, 3, H, W) -> (B, D, H/16, W/16)``).
        head: The task head (``(B, D, h, w) -> raw output``).
        mean: Per-channel mean on the 0-255 scale.
        std: Per-channel standard deviation on the 0-255 scale.
    """

    def __init__(
        self, backbone: nn.Module, head: nn.Module, mean: Sequence[float], std: Sequence[float]
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def pixel_mean(self) -> torch.Tensor:
        """Per-channel mean on the 0-255 scale, float32 ``(1, 3, 1, 1)``."""
        return torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)

    @property
    def pixel_std(self) -> torch.Tensor:
        """Per-channel standard deviation on the 0-255 scale, float32 ``(1, 3, 1, 1)``."""
        return torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8/float 0-255 RGB -> normalised float32 input (constants built once per device)."""
        device = images.device
        if device not in self._on_device:
            self._on_device[device] = (self.pixel_mean.to(device), self.pixel_std.to(device))
        mean, std = self._on_device[device]
        return (images.float() - mean) / std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Raw head output for 0-255 RGB images ``(B, 3, H, W)``."""
        return self.head(self.backbone(self.normalize(images)))
