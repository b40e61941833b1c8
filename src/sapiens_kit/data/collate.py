"""Batch collation that keeps variable-size targets (original-resolution labels) as lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors of equal shape; keep anything else (and ``meta``) as a list per key."""
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if (
            key != "meta"
            and all(isinstance(v, torch.Tensor) for v in values)
            and len({tuple(v.shape) for v in values}) == 1
        ):
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    return batch
