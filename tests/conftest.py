"""Shared fixtures: no network, no W&B, tiny data generated on the fly."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

COLOURS = ((0, 0, 0), (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 0))
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    hub = tmp_path_factory.mktemp("hub")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(hub))
    from huggingface_hub import constants

    # The hub's cache path is read at import time; point it at the per-test folder too.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub / "hub"))
    torch.hub.set_dir(str(hub))
    torch.manual_seed(0)


def write_mask_folder(root: Path, n: int = 4, size: tuple[int, int] = (40, 30),
                      num_classes: int = 3, seed: int = 0) -> Path:
    """Seeded random images with blob masks in the mask-folder layout."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = size[0] + 2 * i, size[1] + i
        img = rng.integers(90, 170, (h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w), np.uint8)
        for c in range(1, num_classes):
            y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
            mask[y : y + 8, x : x + 8] = c
            img[y : y + 8, x : x + 8] = COLOURS[c % len(COLOURS)]
        cv2.imwrite(str(root / "images" / f"img{i}.png"), img)
        cv2.imwrite(str(root / "masks" / f"img{i}.png"), mask)
    names = ["background"] + [f"part{c}" for c in range(1, num_classes)]
    (root / "classes.json").write_text(json.dumps({"classes": names}))
    return root


@pytest.fixture
def seg_folder(tmp_path: Path) -> Path:
    """A 4-sample, 3-class mask folder."""
    return write_mask_folder(tmp_path / "seg")
