"""Freezing helpers, and the Lightning privates the DDP re-wrap depends on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from torch import nn

from sapiens_kit.finetune.freezing import DDP_PRIVATES, check_freezing, freeze, rewrap_ddp, unfreeze


def test_lightning_still_has_the_ddp_privates_used_to_rewrap() -> None:
    """Fails on a Lightning upgrade that removes them: ``model.unfreeze_at_epoch`` under DDP
    re-wraps the model through these (finetune/freezing.py::rewrap_ddp)."""
    from lightning.pytorch.strategies import DDPStrategy

    for name in DDP_PRIVATES:
        assert callable(getattr(DDPStrategy, name, None)), f"DDPStrategy.{name} is gone"


def _net() -> nn.Module:
    net = nn.Module()
    net.backbone = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    net.head = nn.Linear(2, 1)
    return net


def test_freeze_and_unfreeze_by_layer() -> None:
    net = _net()
    layer = {"backbone.0.weight": 0, "backbone.0.bias": 0, "backbone.1.weight": 2,
             "backbone.1.bias": 2}
    trainable, frozen = freeze(net.named_parameters(), False, 1, layer.__getitem__)
    assert trainable == {n for n, _ in net.named_parameters()}
    assert frozen == {"backbone.0.weight", "backbone.0.bias"}
    assert not net.backbone[0].weight.requires_grad and net.backbone[1].weight.requires_grad
    unfreeze(net, frozen, SimpleNamespace(strategy=None, current_epoch=1))  # not DDP: no re-wrap
    assert all(p.requires_grad for p in net.parameters())
    rewrap_ddp(SimpleNamespace(strategy=None))


@pytest.mark.parametrize(("args", "match"), [
    ((False, 3, None, 2, "sapiens_test"), "freeze_blocks=3 is outside 0..2"),
    ((False, 0, 1, 2, "sapiens_test"), "nothing frozen to unfreeze"),
    ((True, 0, -1, 2, "sapiens_test"), "must be >= 0"),
])
def test_contradictory_settings_are_refused(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_freezing(*args)
