"""Detector names (``detector.name``) and the one function that builds a detector.

Each name maps to the ``build(cfg, post)`` function of its module, imported only when that
detector is built (so ``torchvision`` does not import transformers, and ``none`` neither).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sapiens_kit.errors import UserError

if TYPE_CHECKING:
    import torch

    from sapiens_kit.detectors.base import PersonDetector

#: name -> module whose ``build(cfg, post)`` makes that detector.
DETECTORS: dict[str, str] = {
    "rtdetr": "sapiens_kit.detectors.rtdetr",
    "torchvision": "sapiens_kit.detectors.torchvision",
    "detr": "sapiens_kit.detectors.detr",
    "none": "sapiens_kit.detectors.none",
}


def list_detectors() -> list[str]:
    """The names ``detector=`` accepts (``bboxes=<file>`` is a separate key)."""
    return list(DETECTORS)


def _plain(cfg: Any) -> dict[str, Any]:
    if cfg is None:
        return {"name": "none"}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return dict(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if not isinstance(cfg, Mapping):
        raise UserError(f"detector={cfg!r}: expected a detector name ({', '.join(DETECTORS)}) "
                        "from the detector config group")
    return dict(cfg)


def build_detector(cfg: Mapping[str, Any] | None, bboxes: str | Path | None = None,
                   device: str | torch.device = "cpu") -> PersonDetector:
    """The detector a ``detector`` config node describes, moved to ``device``, in eval mode.

    Args:
        cfg: The composed ``detector`` group node (``name``, ``weights``, ``score_thr``, ...);
            ``None`` means ``none``.
        bboxes: A box file; when given it replaces the configured detector (boxes as given).
        device: Where the model runs.

    Raises:
        UserError: an unknown name (the message lists the known ones), bad settings, weights
            that are missing offline or do not fit, an unreadable box file.
    """
    from sapiens_kit.detectors.postprocess import PostProcess

    node = _plain(cfg)
    post = PostProcess.from_cfg(node)
    if bboxes:
        from sapiens_kit.detectors.bboxes import BoxFileDetector

        return BoxFileDetector(bboxes, post, int(node.get("batch_size") or 1)).to(device)
    name = node.get("name")
    if name not in DETECTORS:
        raise UserError(f"detector={name}: no such detector; choose one of "
                        f"{', '.join(DETECTORS)} (or bboxes=<file> for your own boxes)")
    detector: PersonDetector = importlib.import_module(DETECTORS[str(name)]).build(node, post)
    return detector.to(device)


__all__ = ["DETECTORS", "build_detector", "list_detectors"]
