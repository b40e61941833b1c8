"""Layer stacks shared by the official Sapiens heads.

Every Sapiens head is a stack of stride-2 transposed convs followed by a stack of 1x1 convs, each
followed by InstanceNorm2d (no affine, no running stats) and SiLU. Building them as
``nn.Sequential`` of ``[conv, norm, act] * n`` reproduces the official state-dict indices
(``deconv_layers.0/3/6/9``, ``conv_layers.0/3/6``), which is what lets official checkpoints load.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


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
