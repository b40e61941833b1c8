"""The kit's task file: one ``.safetensors`` file that rebuilds a task without Hydra or a
Lightning checkpoint.

The tensors are the task's state dict with LoRA merged into plain weights. The safetensors
metadata holds ``task_class`` (the stored class path, ``sapiens_kit.tasks.seg.SegmentationTask``)
and ``hparams`` (JSON constructor arguments, with ``weights``, ``lora`` and
``allow_random_init`` cleared so a fresh task reaches for nothing). ``push_to_hub`` /
``save_pretrained`` and ``export format=safetensors`` write it; ``from_pretrained``,
``predict weights=`` and the export parity check read it. Files written by earlier versions
(which kept ``weights``/``lora`` in ``hparams``) load the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sapiens_kit.errors import UserError
from sapiens_kit.tasks.registry import check_task, class_path, load_class

#: The constructor arguments a rebuilt task must not take from the file's hparams: the trained
#: weights are in the file, and any LoRA is merged into them.
_CLEARED = {"weights": None, "lora": None, "allow_random_init": False}


def plain_weights(task: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The task's state dict with LoRA merged, and the arguments that rebuild it without LoRA
    and without fetching the weights the run started from."""
    hparams = dict(task.hparams)
    state = task.plain_state_dict() if hasattr(task, "plain_state_dict") else task.state_dict()
    hparams.update({k: v for k, v in _CLEARED.items() if k in hparams or k != "lora"})
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}, hparams


def save_task_file(task: Any, path: str | Path,
                   extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Write ``task`` as a task file at ``path``; returns the hparams stored in it.

    Args:
        task: A sapiens_kit task.
        path: The ``.safetensors`` file to write.
        extra: More string metadata to store (the base weights, for example).
    """
    from safetensors.torch import save_file

    state, hparams = plain_weights(task)
    meta = {"format": "pt", "library": "sapiens_kit", "task_class": class_path(type(task)),
            "hparams": json.dumps(hparams, default=str), **(extra or {})}
    save_file(state, str(path), metadata=meta)
    return hparams


def read_task_metadata(path: Path) -> dict[str, str] | None:
    """The metadata of a task file (``task_class``, ``hparams``, ...), else ``None`` (not a
    ``.safetensors`` file, or one without the task metadata)."""
    if path.suffix != ".safetensors":
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:
        raise UserError(f"{path}: not a readable safetensors file ({err})") from err
    return meta if "task_class" in meta and "hparams" in meta else None


def load_task_file(path: Path, task: str | None = None, source: str | Path | None = None,
                   **overrides: Any) -> Any:
    """Rebuild the task stored at ``path`` (not yet in eval mode).

    Args:
        path: A task file.
        task: Expected task key; another task's file is refused.
        source: How the user named the file, for messages (default ``path``).
        **overrides: Constructor arguments to change (e.g. ``flip_test=False``).
    """
    meta = read_task_metadata(path)
    if meta is None:
        raise UserError(f"{path}: not a sapiens_kit model file (no task metadata); for official "
                        "weights give task=... and weights=...")
    cls = load_class(meta["task_class"])
    check_task(cls, task, source or path)
    stored = json.loads(meta["hparams"])
    hparams = {**stored, **{k: v for k, v in _CLEARED.items() if k in stored or k != "lora"},
               **overrides, "weights": str(path)}
    return cls(**hparams)


__all__ = ["load_task_file", "plain_weights", "read_task_metadata", "save_task_file"]
