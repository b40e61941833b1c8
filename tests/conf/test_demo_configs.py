"""The demos' offline settings: the small-backbone fallback, a weights-only best.ckpt, and the
real recipe one override away."""

from __future__ import annotations

import pytest

from tests.helpers import compose_cfg


@pytest.mark.parametrize("task", ["seg", "pose", "depth", "normal"])
def test_demo_falls_back_to_the_small_backbone_and_keeps_best_weights_only(task: str) -> None:
    cfg = compose_cfg(f"task={task}")
    # Online (or cached) the demo stays Sapiens-0.3B from its official weights.
    assert cfg.model.backbone == "sapiens_0_3b" and cfg.model.weights
    assert cfg.model.allow_random_init and cfg.model.offline_fallback_backbone == "sapiens_tiny"
    assert cfg.callbacks.model_checkpoint.save_weights_only is True
    assert not cfg.callbacks.last_checkpoint.get("save_weights_only")  # last.ckpt resumes
    # The real recipe: no fallback, no random init.
    real = compose_cfg(f"task={task}", "demo=none")
    assert real.model.offline_fallback_backbone is None and not real.model.allow_random_init
    assert not real.callbacks.model_checkpoint.get("save_weights_only")


def test_small_backbone_is_a_registered_choice() -> None:
    cfg = compose_cfg("task=seg", "backbone=sapiens_tiny", "demo=none")
    assert cfg.model.backbone == "sapiens_tiny" and cfg.model.weights is None
