"""The plain module ``export`` writes: a task's normalisation, backbone and head, no Lightning.

Kept out of :mod:`sapiens_kit.export` so that the app imports torch only when it exports.
"""

from __future__ import annotations

from typing import Any

from sapiens_kit.models import SapiensModel


class ExportModel(SapiensModel):
    """The task's :class:`~sapiens_kit.models.SapiensModel` (normalisation + backbone + head) as
    one plain module, with LoRA adapters folded into plain weights (no Lightning)."""

    def __init__(self, task: Any) -> None:
        # merge_lora is a no-op copy without LoRA.
        backbone = task.merge_lora() if hasattr(task, "merge_lora") else task.backbone
        super().__init__(backbone, task.head, task.pixel_mean.flatten().tolist(),
                         task.pixel_std.flatten().tolist())


__all__ = ["ExportModel"]
