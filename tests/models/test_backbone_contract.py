"""Every registered backbone satisfies the contract of ``models/backbone.py`` (registry-driven:
a new family is checked with no test edit)."""

from __future__ import annotations

import pytest
import torch

from sapiens_kit.finetune import transformer_blocks
from sapiens_kit.finetune.lora import lora_target_names
from sapiens_kit.models import (
    Backbone,
    BlockLayout,
    create_backbone,
    list_backbones,
    list_families,
)
from sapiens_kit.tasks.optim import layer_id

SMALL = {"embed_dim": 32, "depth": 2, "num_heads": 2}


@pytest.mark.parametrize("name", sorted(list_backbones()))
def test_every_backbone_satisfies_the_contract(name: str) -> None:
    model = create_backbone(name, img_size=(64, 48), **SMALL)
    assert isinstance(model, Backbone)
    assert type(model) in list_families()
    assert (model.embed_dim, model.num_layers) == (32, 2)
    assert isinstance(model.patch_padding, int)
    assert max(model.default_out_indices) == model.num_layers - 1
    layout = model.block_layout
    assert isinstance(layout, BlockLayout)

    names = [n for n, _ in model.named_parameters()]
    # Each block's parameters are found under the declared prefix, and the blocks are instances
    # of the declared classes (what FSDP wraps).
    assert {layout.block_index(n) for n in names} - {None} == set(range(model.num_layers))
    blocks = model.get_submodule(layout.blocks)
    assert all(isinstance(b, layout.block_classes) for b in blocks)
    assert set(layout.block_classes) <= transformer_blocks()
    # Layer decay numbering: embeddings 0, blocks 1..L, the rest L + 1.
    ids = {layer_id(f"backbone.{n}", model.num_layers, layout) for n in names}
    assert ids == set(range(model.num_layers + 2))
    # LoRA finds linears in every block.
    targets = lora_target_names(model, ["attn", "mlp"])
    assert {layout.block_index(n) for n in targets} == set(range(model.num_layers))
    # The loader's mapping accepts the module's own state dict unchanged.
    own = model.state_dict()
    mapped = model.filter_checkpoint(own)
    assert set(mapped) == set(own) and all(torch.equal(mapped[k], own[k]) for k in own)

    model.set_grad_checkpointing(True)
    x = torch.randn(1, 3, 64, 48, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None
    feats = model.forward_intermediates(x.detach(), indices=list(model.default_out_indices),
                                        intermediates_only=True)
    assert len(feats) == len(model.default_out_indices)


def test_layer_ids_follow_the_given_layout_only() -> None:
    v1, v2 = (type(create_backbone(n, img_size=(32, 32), **SMALL)).block_layout
              for n in ("sapiens_test", "sapiens2_0_1b"))
    assert layer_id("backbone.blocks.1.attn.qkv.weight", 2, v1) == 2
    assert layer_id("backbone.model.blocks.1.attn.qkv.weight", 2, v2) == 2
    # A name another family uses is not a block of this one.
    assert layer_id("backbone.model.blocks.1.attn.qkv.weight", 2, v1) == 3
    assert layer_id("backbone.model.reg_token", 2, v2) == 0
