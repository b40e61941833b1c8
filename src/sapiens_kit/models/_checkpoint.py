"""Reading checkpoint files safely and splitting them into backbone and head parts.

Every file goes through ``torch.load(weights_only=True)`` or safetensors, so a checkpoint can never
run code. The layouts understood are:

- a plain backbone state dict (Meta's ``*_clean.pth`` pretrain file, or one saved by this kit);
- an mmengine task checkpoint ``{"state_dict": {"backbone.*", "head.*" | "decode_head.*"}}``;
- a Lightning ``.ckpt`` written by a sapiens_kit task (``backbone.*`` and ``head.*``);
- a ``.safetensors`` file holding any of the above state dicts.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from sapiens_kit.models._pretrained import WeightsError

#: Prefixes under which task checkpoints store their head weights.
HEAD_PREFIXES = ("head.", "decode_head.")
#: Prefixes a backbone can sit under, outermost first (EMA/LoRA wrappers add more later).
BACKBONE_PREFIXES = ("model.backbone.", "backbone.")


def is_sharded_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a folder of per-rank shards (``trainer=fsdp`` with
    ``state_dict_type: sharded``, torch.distributed.checkpoint layout)."""
    return Path(path).is_dir() and (Path(path) / ".metadata").is_file()


def sharded_checkpoint_message(path: str | Path) -> str:
    """What to do with a sharded checkpoint where one file is needed."""
    return (
        f"{path}: is a sharded FSDP checkpoint (a folder of per-rank shards). Resume it with "
        f"trainer=fsdp, or merge it into one file first: python -m "
        f"lightning.pytorch.utilities.consolidate_checkpoint {path} (writes "
        f"{path}.consolidated, which every command accepts)"
    )


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint file into a flat ``{name: tensor}`` state dict without unpickling code."""
    path = Path(path)
    if is_sharded_checkpoint(path):
        raise WeightsError(sharded_checkpoint_message(path))
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint file does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as err:
            raise WeightsError(f"{path}: not a readable safetensors file ({err})") from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsError(
            f"{path}: refused to load: the file contains pickled objects other than tensors "
            f"(weights_only=True). Only plain state dicts are accepted. Details: {err}"
        ) from err
    except Exception as err:
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({err})") from err
    return _flatten(obj, path)


def _flatten(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "module"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(
                isinstance(v, torch.Tensor) for v in inner.values()
            ):
                obj = inner
                break
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise WeightsError(f"{path}: holds no state dict of tensors")


def split_state_dict(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split a state dict into ``(backbone, head)`` parts with their prefixes removed.

    A dict with no known prefix is treated as a bare backbone (pretrain layout).
    """
    backbone: dict[str, torch.Tensor] = {}
    head: dict[str, torch.Tensor] = {}
    prefixed = any(k.startswith(BACKBONE_PREFIXES) for k in state_dict)
    for key, value in state_dict.items():
        key = key.removeprefix("model.")
        if key.startswith(HEAD_PREFIXES):
            head[key.split(".", 1)[1]] = value
        elif key.startswith("backbone."):
            backbone[key.removeprefix("backbone.")] = value
        elif not prefixed:
            backbone[key] = value
    return backbone, head
