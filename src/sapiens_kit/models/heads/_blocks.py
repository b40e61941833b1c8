"""Layer stacks shared by the official Sapiens heads.

Every Sapiens head is a stack of stride-2 transposed convs followed by a stack of 1x1 convs, each
followed by InstanceNorm2d (no affine, no running stats) and SiLU. Building them as
``nn.Sequential`` of ``[conv, norm, act] * n`` reproduces the official state-dict indices
(``deconv_layers.0/3/6/9``, ``conv_layers.0/3/6``), which is what lets official checkpoints load.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def deconv_stack(in_channels: int, channels: Sequence[int]) -> nn.Sequential:
    """``len(channels)`` x [ConvTranspose2d(k4, s2, p1, no bias), InstanceNorm2d, SiLU]."""
    layers: list[nn.Module] = []
    for out_channels in channels:
        layers += [
            nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
            nn.InstanceNorm2d(out_channels),
            nn.SiLU(inplace=True),
        ]
        in_channels = out_channels
    return nn.Sequential(*layers)


def conv_stack(in_channels: int, channels: Sequence[int]) -> nn.Sequential:
    """``len(channels)`` x [Conv2d(1x1, bias), InstanceNorm2d, SiLU]."""
    layers: list[nn.Module] = []
    for out_channels in channels:
        layers += [
            nn.Conv2d(in_channels, out_channels, 1),
            nn.InstanceNorm2d(out_channels),
            nn.SiLU(inplace=True),
        ]
        in_channels = out_channels
    return nn.Sequential(*layers)


def init_head_weights(module: nn.Module, std: float = 0.001) -> None:
    """Normal(std) conv weights and zero biases, the official heads' initialisation."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class UpsampleHead(nn.Module):
    """Deconv stack, 1x1-conv stack, optional Dropout2d, then a 1x1 output conv.

    The shared skeleton of every official Sapiens head; subclasses fix the defaults and the name of
    the output layer (``conv_seg`` in mmseg heads, ``final_layer`` in the pose head), which is part
    of the checkpoint key names.
    """

    output_name = "conv_seg"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        deconv_channels: Sequence[int],
        conv_channels: Sequence[int],
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.deconv_layers = deconv_stack(in_channels, deconv_channels)
        last = deconv_channels[-1] if deconv_channels else in_channels
        self.conv_layers = conv_stack(last, conv_channels)
        last = conv_channels[-1] if conv_channels else last
        # Dropout has no weights, so Identity keeps the official key names when it is off.
        self.dropout: nn.Module = nn.Dropout2d(dropout) if dropout else nn.Identity()
        setattr(self, self.output_name, nn.Conv2d(last, out_channels, 1))
        self.upsample_factor = 2 ** len(deconv_channels)
        self.grad_checkpointing = False
        init_head_weights(self)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each [conv, norm, act] stage in backward instead of keeping its activations.

        At 1024x768 the stages work at up to half the input resolution with hundreds of
        channels, so they hold more activation memory than a checkpointed backbone.
        """
        self.grad_checkpointing = enable

    def _checkpointed_stages(self, x: torch.Tensor) -> torch.Tensor:
        for stack in (self.deconv_layers, self.conv_layers):
            for i in range(0, len(stack), 3):
                x = checkpoint(stack[i : i + 3], x, use_reentrant=False)
        return x

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Map ``(B, D, h, w)`` features to ``(B, out, h * 2^n, w * 2^n)``."""
        if self.grad_checkpointing and torch.is_grad_enabled():
            x = self._checkpointed_stages(features)
        else:
            x = self.conv_layers(self.deconv_layers(features))
        x = self.dropout(x)
        out: torch.Tensor = getattr(self, self.output_name)(x)
        return out
