"""Sapiens v1 backbones (ECCV 2024) on timm's VisionTransformer.

The blocks are timm's: pre-norm, LayerNorm eps 1e-6, exact GELU, fused qkv with bias, no layer
scale, final norm, no class token. Two things differ from stock timm and are added here: an
optional zero padding of the patch-embedding conv (``padding=2`` in the official pose, normal and
LIP/CIHP configs) and position-embedding resampling without antialias, as the official code does.

File order follows timm: module, ``checkpoint_filter_fn``, weight entries, builder, entry points.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from timm.layers import resample_abs_pos_embed
from timm.models import checkpoint_seq
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from sapiens_kit.models._checkpoint import read_checkpoint, split_state_dict
from sapiens_kit.models._pretrained import (
    PretrainedCfg,
    WeightsError,
    resolve_source,
)
from sapiens_kit.models._registry import (
    get_pretrained_cfg,
    is_registered_weights,
    register_alias,
    register_backbone,
    register_pretrained,
)

log = logging.getLogger(__name__)

#: Keys a Sapiens checkpoint may carry that a task backbone deliberately does not use.
IGNORED_CHECKPOINT_KEYS = ("cls_token", "mask_token")


class SapiensViT(VisionTransformer):
    """Sapiens v1 encoder returning a ``(B, D, H/16, W/16)`` feature map.

    Args:
        img_size: ``(H, W)`` the learnable position embedding is laid out for.
        patch_padding: Zero padding of the 16x16 patch conv (2 for pose/normal, 0 for seg/depth).
        **kwargs: Forwarded to timm's ``VisionTransformer`` (``embed_dim``, ``depth``, ...).
    """

    def __init__(
        self,
        img_size: tuple[int, int] = (1024, 768),
        patch_padding: int = 0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("qkv_bias", True)
        super().__init__(
            img_size=img_size,
            patch_size=16,
            class_token=False,
            global_pool="",
            num_classes=0,
            dynamic_img_size=True,
            **kwargs,
        )
        self.patch_padding = patch_padding
        if patch_padding:
            old = self.patch_embed.proj
            self.patch_embed.proj = nn.Conv2d(
                old.in_channels, old.out_channels, 16, 16, padding=patch_padding
            )
        self.num_layers = len(self.blocks)
        self.img_size = tuple(img_size)

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        # Resample only when the input grid differs from the built one, bicubic without
        # antialias as the official forward does (timm's default antialias would change numbers).
        batch, height, width, dim = x.shape
        pos_embed = self.pos_embed
        if (height, width) != tuple(self.patch_embed.grid_size):
            pos_embed = resample_abs_pos_embed(
                pos_embed,
                new_size=(height, width),
                old_size=self.patch_embed.grid_size,
                num_prefix_tokens=0,
                antialias=False,
            )
        return self.pos_drop(x.reshape(batch, -1, dim) + pos_embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode images ``(B, 3, H, W)`` into the last layer's normed feature map."""
        x = self.patch_embed(x)
        batch, height, width, dim = x.shape
        x = self.norm_pre(self.patch_drop(self._pos_embed(x)))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        x = self.norm(x)
        return x.transpose(1, 2).reshape(batch, dim, height, width)

    @property
    def default_out_indices(self) -> tuple[int, ...]:
        """Four evenly spaced block indices for multi-level heads (dinov2's ``out_index``)."""
        depth = self.num_layers
        return tuple(sorted({max(0, round(depth * f) - 1) for f in (0.25, 0.5, 0.75, 1.0)}))

    def load_weights(self, weights: str) -> dict[str, torch.Tensor]:
        """Load ``weights`` strictly into this backbone.

        Returns:
            The checkpoint's head part (prefix removed), empty for pretrain checkpoints, so a task
            can load it into its head.
        """
        cfg: PretrainedCfg | None = None
        if is_registered_weights(weights):
            cfg = get_pretrained_cfg(weights)
            if cfg.task != "pretrain" and cfg.patch_padding != self.patch_padding:
                log.warning(
                    "weights %s were trained with patch_padding=%d but the backbone uses %d",
                    weights, cfg.patch_padding, self.patch_padding,
                )
        path = resolve_source(weights, cfg)
        backbone_sd, head_sd = split_state_dict(read_checkpoint(path))
        if not backbone_sd:
            raise WeightsError(f"{path}: no backbone weights found in the checkpoint")
        try:
            self.load_state_dict_strict(backbone_sd)
        except WeightsError as err:
            raise WeightsError(f"{path}: {err}") from None
        log.info("loaded backbone weights from %s", path)
        return head_sd

    def load_state_dict_strict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Map (Meta or timm layout) and load a backbone state dict; every key must match."""
        mapped = checkpoint_filter_fn(state_dict, self)
        own = self.state_dict()
        missing = sorted(set(own) - set(mapped))
        unexpected = sorted(set(mapped) - set(own))
        wrong = sorted(k for k in set(own) & set(mapped) if own[k].shape != mapped[k].shape)
        if missing or unexpected or wrong:
            raise WeightsError(_mismatch_message(missing, unexpected, wrong, own, mapped))
        self.load_state_dict(mapped, strict=True)


def _mismatch_message(
    missing: list[str],
    unexpected: list[str],
    wrong: list[str],
    own: Mapping[str, torch.Tensor],
    mapped: Mapping[str, torch.Tensor],
) -> str:
    lines = ["checkpoint does not match the backbone architecture"]
    if wrong:
        shown = [f"{k} {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}" for k in wrong[:5]]
        lines.append(f"shape mismatch ({len(wrong)}): " + "; ".join(shown))
    if missing:
        lines.append(f"missing keys ({len(missing)}): {', '.join(missing[:8])}")
    if unexpected:
        lines.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:8])}")
    return "\n  ".join(lines)


_META_TO_TIMM = (
    (re.compile(r"^patch_embed\.projection\."), "patch_embed.proj."),
    (re.compile(r"^layers\.(\d+)\.ln1\."), r"blocks.\1.norm1."),
    (re.compile(r"^layers\.(\d+)\.ln2\."), r"blocks.\1.norm2."),
    (re.compile(r"^layers\.(\d+)\.attn\."), r"blocks.\1.attn."),
    (re.compile(r"^layers\.(\d+)\.ffn\.layers\.0\.0\."), r"blocks.\1.mlp.fc1."),
    (re.compile(r"^layers\.(\d+)\.ffn\.layers\.1\."), r"blocks.\1.mlp.fc2."),
    (re.compile(r"^ln1\."), "norm."),
)


def checkpoint_filter_fn(
    state_dict: Mapping[str, torch.Tensor], model: SapiensViT
) -> dict[str, torch.Tensor]:
    """Map Meta's mmpretrain key names to timm's and fit the position embedding to ``model``.

    The class-token slot (odd token count) is dropped and the remaining grid is resampled to the
    model grid with bicubic, ``align_corners=False``, no antialias, in float32.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key in IGNORED_CHECKPOINT_KEYS:
            continue
        for pattern, repl in _META_TO_TIMM:
            key, hits = pattern.subn(repl, key)
            if hits:
                break
        out[key] = value
    if "pos_embed" in out:
        out["pos_embed"] = fit_pos_embed(out["pos_embed"], tuple(model.patch_embed.grid_size))
    return out


def infer_pos_grid(num_tokens: int) -> tuple[int, int]:
    """Grid of a stored position embedding: square (pretrain, 64x64) or 4:3 (tasks, 64x48)."""
    side = math.isqrt(num_tokens)
    if side * side == num_tokens:
        return side, side
    height = math.isqrt(num_tokens * 4 // 3)
    if height * (height * 3 // 4) == num_tokens:
        return height, height * 3 // 4
    raise WeightsError(f"cannot infer the grid of a position embedding with {num_tokens} tokens")


def fit_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Drop a class slot if present and resample ``pos_embed`` to ``grid`` (official numerics)."""
    if pos_embed.ndim != 3:
        raise WeightsError(f"pos_embed must be (1, N, D), got {tuple(pos_embed.shape)}")
    if pos_embed.shape[1] % 2 == 1:
        pos_embed = pos_embed[:, 1:]
    old = infer_pos_grid(pos_embed.shape[1])
    if old == grid:
        return pos_embed
    return resample_abs_pos_embed(
        pos_embed, new_size=grid, old_size=old, num_prefix_tokens=0, antialias=False
    )


def _hub_cfg(arch: str, tag: str, filename: str, **kwargs: Any) -> PretrainedCfg:
    return PretrainedCfg(
        arch=arch, tag=tag, hf_hub_id="facebook/sapiens", hf_hub_filename=filename, **kwargs
    )


def _v1_cfgs() -> dict[str, PretrainedCfg]:
    cfgs: dict[str, PretrainedCfg] = {}
    pretrain_epochs = {"0.3b": 1600, "0.6b": 1600, "1b": 173, "2b": 660}
    seg = {"0.3b": "7673_epoch_194", "0.6b": "7777_epoch_178", "1b": "7994_epoch_151"}
    depth = {"0.3b": 100, "0.6b": 70, "1b": 88, "2b": 25}
    goliath_ap = {"0.3b": 573, "0.6b": 609, "1b": 639}
    coco_ap = {"0.3b": 796, "0.6b": 812, "1b": 821, "2b": 822}
    wholebody_ap = {"0.3b": 620, "0.6b": 695, "1b": 727, "2b": 745}
    normal = {"0.3b": 66, "0.6b": 200, "1b": 115, "2b": 70}
    for size, epoch in pretrain_epochs.items():
        arch = f"sapiens_{size.replace('.', '_')}"
        root = "sapiens_host/{task}/checkpoints/sapiens_" + size
        cfgs[f"{arch}.pretrain_humans300m"] = _hub_cfg(
            arch, "pretrain_humans300m",
            f"{root.format(task='pretrain')}/sapiens_{size}_epoch_{epoch}_clean.pth",
            input_size=(3, 1024, 1024),
        )
        if size in seg:
            cfgs[f"{arch}.seg_goliath"] = _hub_cfg(
                arch, "seg_goliath",
                f"{root.format(task='seg')}/sapiens_{size}_goliath_best_goliath_mIoU_{seg[size]}.pth",
                task="seg", num_classes=28,
            )
        pose_kw: dict[str, Any] = dict(task="pose", patch_padding=2)
        if size in goliath_ap:
            cfgs[f"{arch}.pose_goliath"] = _hub_cfg(
                arch, "pose_goliath",
                f"{root.format(task='pose')}/sapiens_{size}_goliath_best_goliath_AP_"
                f"{goliath_ap[size]}.pth",
                num_keypoints=308, keypoint_set="goliath308", **pose_kw,
            )
        # COCO-17 / COCO-WholeBody pose weights live outside facebook/ (noahcao/sapiens-pose-coco),
        # assumed to follow the monorepo's sapiens_host/ layout.
        coco_root = root.format(task="pose")
        cfgs[f"{arch}.pose_coco"] = replace(_hub_cfg(
            arch, "pose_coco", f"{coco_root}/sapiens_{size}_coco_best_coco_AP_{coco_ap[size]}.pth",
            num_keypoints=17, keypoint_set="coco17", **pose_kw,
        ), hf_hub_id="noahcao/sapiens-pose-coco")
        cfgs[f"{arch}.pose_coco_wholebody"] = replace(_hub_cfg(
            arch, "pose_coco_wholebody",
            f"{coco_root}/sapiens_{size}_coco_wholebody_best_coco_wholebody_AP_"
            f"{wholebody_ap[size]}.pth",
            num_keypoints=133, keypoint_set="coco_wholebody133", **pose_kw,
        ), hf_hub_id="noahcao/sapiens-pose-coco")
        cfgs[f"{arch}.depth_render_people"] = _hub_cfg(
            arch, "depth_render_people",
            f"{root.format(task='depth')}/sapiens_{size}_render_people_epoch_{depth[size]}.pth",
            task="depth",
        )
        cfgs[f"{arch}.normal_render_people"] = _hub_cfg(
            arch, "normal_render_people",
            f"{root.format(task='normal')}/sapiens_{size}_normal_render_people_epoch_{normal[size]}.pth",
            task="normal", patch_padding=2,
        )
    return cfgs


default_cfgs = _v1_cfgs()
register_pretrained(default_cfgs)


def _create_sapiens(img_size: tuple[int, int], **kwargs: Any) -> SapiensViT:
    return SapiensViT(img_size=img_size, **kwargs)


def _arch(
    dims: tuple[int, int, int], img_size: tuple[int, int], overrides: dict[str, Any]
) -> SapiensViT:
    embed_dim, depth, num_heads = dims
    args: dict[str, Any] = dict(
        embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=4.0
    )
    return _create_sapiens(img_size, **{**args, **overrides})


@register_backbone
def sapiens_0_3b(img_size: tuple[int, int] = (1024, 768), **overrides: Any) -> SapiensViT:
    """Sapiens-0.3B: D=1024, 24 layers, 16 heads."""
    return _arch((1024, 24, 16), img_size, overrides)


@register_backbone
def sapiens_0_6b(img_size: tuple[int, int] = (1024, 768), **overrides: Any) -> SapiensViT:
    """Sapiens-0.6B: D=1280, 32 layers, 16 heads."""
    return _arch((1280, 32, 16), img_size, overrides)


@register_backbone
def sapiens_1b(img_size: tuple[int, int] = (1024, 768), **overrides: Any) -> SapiensViT:
    """Sapiens-1B: D=1536, 40 layers, 24 heads."""
    return _arch((1536, 40, 24), img_size, overrides)


@register_backbone
def sapiens_2b(img_size: tuple[int, int] = (1024, 768), **overrides: Any) -> SapiensViT:
    """Sapiens-2B: D=1920, 48 layers, 32 heads (head dim 60)."""
    return _arch((1920, 48, 32), img_size, overrides)


@register_backbone
def sapiens_test(img_size: tuple[int, int] = (1024, 768), **overrides: Any) -> SapiensViT:
    """Tiny Sapiens-architecture model for tests: D=32, 2 layers, 2 heads."""
    return _arch((32, 2, 2), img_size, overrides)


for _size in ("0.3b", "0.6b", "1b", "2b"):
    register_alias(f"sapiens_{_size}", f"sapiens_{_size.replace('.', '_')}")
