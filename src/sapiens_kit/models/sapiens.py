"""Sapiens v1 backbones (ECCV 2024) on timm's VisionTransformer.

The blocks are timm's: pre-norm, LayerNorm eps 1e-6, exact GELU, fused qkv with bias, no layer
scale, final norm, no class token. Two things differ from stock timm and are added here: an
optional zero padding of the patch-embedding conv (``padding=2`` in the official pose, normal and
LIP/CIHP configs) and position-embedding resampling without antialias, as the official code does.

File order follows timm: module, ``checkpoint_filter_fn``, weight entries, builder, entry points.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from timm.layers import resample_abs_pos_embed
from timm.models import checkpoint_seq
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from sapiens_kit.models._pretrained import PretrainedCfg, WeightsError
from sapiens_kit.models._registry import register_alias, register_backbone, register_family
from sapiens_kit.models.backbone import BlockLayout, evenly_spaced_indices

#: Keys a Sapiens checkpoint may carry that a task backbone deliberately does not use.
IGNORED_CHECKPOINT_KEYS = ("cls_token", "mask_token")


@register_family
class SapiensViT(VisionTransformer):
    """Sapiens v1 encoder returning a ``(B, D, H/16, W/16)`` feature map.

    Satisfies the :class:`~sapiens_kit.models.backbone.Backbone` contract.

    Args:
        img_size: ``(H, W)`` the learnable position embedding is laid out for.
        patch_padding: Zero padding of the 16x16 patch conv (2 for pose/normal, 0 for seg/depth).
        **kwargs: Forwarded to timm's ``VisionTransformer`` (``embed_dim``, ``depth``, ...).
    """

    block_layout: ClassVar[BlockLayout] = BlockLayout(
        blocks="blocks",
        embeddings=("pos_embed", "patch_embed", "cls_token", "mask_token"),
        no_weight_decay=("pos_embed", "cls_token", "mask_token"),
        block_classes=(Block,),
    )

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
        return evenly_spaced_indices(self.num_layers)

    def filter_checkpoint(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Meta or timm layout -> this module's names, position embedding fitted to its grid."""
        return checkpoint_filter_fn(state_dict, self)


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


def _cfg(filename: str, **kwargs: Any) -> dict[str, Any]:
    """An entry of Meta's ``facebook/sapiens`` Hub repository (``sapiens_host/`` layout)."""
    return {"hf_hub_id": "facebook/sapiens", "hf_hub_filename": f"sapiens_host/{filename}",
            **kwargs}


def _generate(table: dict[str, dict[str, Any]]) -> dict[str, PretrainedCfg]:
    """Fill ``arch`` and ``tag`` from each ``arch.tag`` key (timm's ``generate_default_cfgs``)."""
    out = {}
    for name, kwargs in table.items():
        arch, _, tag = name.partition(".")
        out[name] = PretrainedCfg(arch=arch, tag=tag, **kwargs)
    return out


_PRETRAIN = {"input_size": (3, 1024, 1024)}
_SEG = {"task": "seg", "num_classes": 28}
_GOLIATH308 = {"task": "pose", "patch_padding": 2, "num_keypoints": 308,
               "keypoint_set": "goliath308"}
# COCO-17 / COCO-WholeBody pose weights live outside facebook/ (noahcao/sapiens-pose-coco),
# assumed to follow the monorepo's sapiens_host/ layout.
_COCO17 = {"task": "pose", "patch_padding": 2, "num_keypoints": 17, "keypoint_set": "coco17",
           "hf_hub_id": "noahcao/sapiens-pose-coco"}
_WHOLEBODY133 = {"task": "pose", "patch_padding": 2, "num_keypoints": 133,
                 "keypoint_set": "coco_wholebody133", "hf_hub_id": "noahcao/sapiens-pose-coco"}
_DEPTH = {"task": "depth"}
_NORMAL = {"task": "normal", "patch_padding": 2}

#: Every registered Sapiens v1 weight, ``arch.tag`` -> metadata. An architecture's first entry
#: is its default (``get_pretrained_cfg("sapiens_1b")``).
default_cfgs: dict[str, PretrainedCfg] = _generate({
    # ---- Sapiens-0.3B
    "sapiens_0_3b.pretrain_humans300m": _cfg(
        "pretrain/checkpoints/sapiens_0.3b/sapiens_0.3b_epoch_1600_clean.pth", **_PRETRAIN),
    "sapiens_0_3b.seg_goliath": _cfg(
        "seg/checkpoints/sapiens_0.3b/sapiens_0.3b_goliath_best_goliath_mIoU_7673_epoch_194.pth",
        **_SEG),
    "sapiens_0_3b.pose_goliath": _cfg(
        "pose/checkpoints/sapiens_0.3b/sapiens_0.3b_goliath_best_goliath_AP_573.pth",
        **_GOLIATH308),
    "sapiens_0_3b.pose_coco": _cfg(
        "pose/checkpoints/sapiens_0.3b/sapiens_0.3b_coco_best_coco_AP_796.pth", **_COCO17),
    "sapiens_0_3b.pose_coco_wholebody": _cfg(
        "pose/checkpoints/sapiens_0.3b/sapiens_0.3b_coco_wholebody_best_coco_wholebody_AP_620.pth",
        **_WHOLEBODY133),
    "sapiens_0_3b.depth_render_people": _cfg(
        "depth/checkpoints/sapiens_0.3b/sapiens_0.3b_render_people_epoch_100.pth", **_DEPTH),
    "sapiens_0_3b.normal_render_people": _cfg(
        "normal/checkpoints/sapiens_0.3b/sapiens_0.3b_normal_render_people_epoch_66.pth",
        **_NORMAL),
    # ---- Sapiens-0.6B
    "sapiens_0_6b.pretrain_humans300m": _cfg(
        "pretrain/checkpoints/sapiens_0.6b/sapiens_0.6b_epoch_1600_clean.pth", **_PRETRAIN),
    "sapiens_0_6b.seg_goliath": _cfg(
        "seg/checkpoints/sapiens_0.6b/sapiens_0.6b_goliath_best_goliath_mIoU_7777_epoch_178.pth",
        **_SEG),
    "sapiens_0_6b.pose_goliath": _cfg(
        "pose/checkpoints/sapiens_0.6b/sapiens_0.6b_goliath_best_goliath_AP_609.pth",
        **_GOLIATH308),
    "sapiens_0_6b.pose_coco": _cfg(
        "pose/checkpoints/sapiens_0.6b/sapiens_0.6b_coco_best_coco_AP_812.pth", **_COCO17),
    "sapiens_0_6b.pose_coco_wholebody": _cfg(
        "pose/checkpoints/sapiens_0.6b/sapiens_0.6b_coco_wholebody_best_coco_wholebody_AP_695.pth",
        **_WHOLEBODY133),
    "sapiens_0_6b.depth_render_people": _cfg(
        "depth/checkpoints/sapiens_0.6b/sapiens_0.6b_render_people_epoch_70.pth", **_DEPTH),
    "sapiens_0_6b.normal_render_people": _cfg(
        "normal/checkpoints/sapiens_0.6b/sapiens_0.6b_normal_render_people_epoch_200.pth",
        **_NORMAL),
    # ---- Sapiens-1B
    "sapiens_1b.pretrain_humans300m": _cfg(
        "pretrain/checkpoints/sapiens_1b/sapiens_1b_epoch_173_clean.pth", **_PRETRAIN),
    "sapiens_1b.seg_goliath": _cfg(
        "seg/checkpoints/sapiens_1b/sapiens_1b_goliath_best_goliath_mIoU_7994_epoch_151.pth",
        **_SEG),
    "sapiens_1b.pose_goliath": _cfg(
        "pose/checkpoints/sapiens_1b/sapiens_1b_goliath_best_goliath_AP_639.pth", **_GOLIATH308),
    "sapiens_1b.pose_coco": _cfg(
        "pose/checkpoints/sapiens_1b/sapiens_1b_coco_best_coco_AP_821.pth", **_COCO17),
    "sapiens_1b.pose_coco_wholebody": _cfg(
        "pose/checkpoints/sapiens_1b/sapiens_1b_coco_wholebody_best_coco_wholebody_AP_727.pth",
        **_WHOLEBODY133),
    "sapiens_1b.depth_render_people": _cfg(
        "depth/checkpoints/sapiens_1b/sapiens_1b_render_people_epoch_88.pth", **_DEPTH),
    "sapiens_1b.normal_render_people": _cfg(
        "normal/checkpoints/sapiens_1b/sapiens_1b_normal_render_people_epoch_115.pth", **_NORMAL),
    # ---- Sapiens-2B (no seg_goliath or pose_goliath entry)
    "sapiens_2b.pretrain_humans300m": _cfg(
        "pretrain/checkpoints/sapiens_2b/sapiens_2b_epoch_660_clean.pth", **_PRETRAIN),
    "sapiens_2b.pose_coco": _cfg(
        "pose/checkpoints/sapiens_2b/sapiens_2b_coco_best_coco_AP_822.pth", **_COCO17),
    "sapiens_2b.pose_coco_wholebody": _cfg(
        "pose/checkpoints/sapiens_2b/sapiens_2b_coco_wholebody_best_coco_wholebody_AP_745.pth",
        **_WHOLEBODY133),
    "sapiens_2b.depth_render_people": _cfg(
        "depth/checkpoints/sapiens_2b/sapiens_2b_render_people_epoch_25.pth", **_DEPTH),
    "sapiens_2b.normal_render_people": _cfg(
        "normal/checkpoints/sapiens_2b/sapiens_2b_normal_render_people_epoch_70.pth", **_NORMAL),
})

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


@register_backbone
def sapiens_tiny(img_size: tuple[int, int] = (1024, 768), **overrides: Any) -> SapiensViT:
    """Small Sapiens-architecture model, no official weights: D=192, 6 layers, 3 heads
    (about 2.8M parameters). The offline demos train it from random init, which Sapiens-0.3B
    cannot do visibly in minutes on a CPU."""
    return _arch((192, 6, 3), img_size, overrides)


for _size in ("0.3b", "0.6b", "1b", "2b"):
    register_alias(f"sapiens_{_size}", f"sapiens_{_size.replace('.', '_')}")
