"""Test helpers: write state dicts the way Meta's checkpoints name their keys; tiny tasks and
their checkpoints."""

from __future__ import annotations

import re
from pathlib import Path

import torch

_TIMM_TO_META = (
    (r"^patch_embed\.proj\.", "patch_embed.projection."),
    (r"^blocks\.(\d+)\.norm1\.", r"layers.\1.ln1."),
    (r"^blocks\.(\d+)\.norm2\.", r"layers.\1.ln2."),
    (r"^blocks\.(\d+)\.attn\.", r"layers.\1.attn."),
    (r"^blocks\.(\d+)\.mlp\.fc1\.", r"layers.\1.ffn.layers.0.0."),
    (r"^blocks\.(\d+)\.mlp\.fc2\.", r"layers.\1.ffn.layers.1."),
    (r"^norm\.", "ln1."),
)


def to_meta_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a timm-layout Sapiens state dict to Meta's mmpretrain names."""
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in _TIMM_TO_META:
            key, n = re.subn(pattern, repl, key)
            if n:
                break
        out[key] = value.clone()
    return out


def meta_pretrain_state_dict(dim: int, depth: int, grid: int = 64) -> dict[str, torch.Tensor]:
    """A random pretrain ``*_clean.pth`` state dict: class token + (1, 1 + grid^2, D) pos_embed."""
    from sapiens_kit import create_backbone

    model = create_backbone("sapiens_test", img_size=(grid * 16, grid * 16), embed_dim=dim,
                            depth=depth)
    torch.nn.init.normal_(model.pos_embed, std=0.5)
    sd = to_meta_keys(model.state_dict())
    sd["pos_embed"] = torch.cat([torch.randn(1, 1, dim), sd["pos_embed"]], dim=1)
    sd["cls_token"] = torch.randn(1, 1, dim)
    return sd


def tiny_task(key: str, img_size: tuple[int, int] = (64, 48), **kwargs: object) -> object:
    """A random ``sapiens_test`` task with a small head (no training), in eval mode."""
    from sapiens_kit.utils.cli import TASK_CLASSES, import_class

    head = {"deconv_channels": [16], "conv_channels": [16]}
    if key == "pose":
        kwargs.setdefault("keypoints", "coco17")
    if key == "seg":
        kwargs.setdefault("num_classes", 3)
        kwargs.setdefault("class_names", ["background", "part1", "part2"])
    cls = import_class(TASK_CLASSES[key])
    return cls(backbone="sapiens_test", img_size=img_size, head=head, **kwargs).eval()


def save_task_checkpoint(task: object, path: str | Path) -> Path:
    """Write ``task`` as the Lightning checkpoint a sapiens_kit run would (weights + hparams)."""
    import lightning

    cls = type(task)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams),
                "pytorch-lightning_version": lightning.__version__,
                "sapiens_kit": {"task_class": f"{cls.__module__}.{cls.__qualname__}"}}, path)
    return path
