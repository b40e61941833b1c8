"""Shared fixtures: no network, no W&B, tiny data generated on the fly.

Plain helper functions live in ``tests/helpers.py``; import them from there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# Re-exported for test modules written before the helpers moved to tests/helpers.py.
from tests.helpers import SHARED_DATA, write_mask_folder

__all__ = ["SHARED_DATA", "write_mask_folder"]


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


@pytest.fixture
def seg_folder(tmp_path: Path) -> Path:
    """A 4-sample, 3-class mask folder."""
    return write_mask_folder(tmp_path / "seg")
