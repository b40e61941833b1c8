"""Backbone registry and the feature-map contract, for every registered architecture."""

from __future__ import annotations

import pytest
import torch

import sapiens_kit
from sapiens_kit.models.sapiens import SapiensViT

V1 = {  # name: (embed_dim, depth, heads) from the reference table
    "sapiens_0_3b": (1024, 24, 16),
    "sapiens_0_6b": (1280, 32, 16),
    "sapiens_1b": (1536, 40, 24),
    "sapiens_2b": (1920, 48, 32),
}


def test_list_backbones_has_every_family() -> None:
    names = sapiens_kit.list_backbones()
    assert set(V1) | {"sapiens_test"} <= set(names)
    assert {"sapiens2_0_1b", "sapiens2_0_4b", "sapiens2_0_8b", "sapiens2_1b", "sapiens2_5b"} <= set(
        names
    )


@pytest.mark.parametrize("name", sorted(V1))
def test_v1_architecture_matches_reference(name: str) -> None:
    dim, depth, heads = V1[name]
    with torch.device("meta"):
        model = sapiens_kit.create_backbone(name)
    assert isinstance(model, SapiensViT)
    assert (model.embed_dim, model.num_layers) == (dim, depth)
    blk = model.blocks[0]
    assert blk.attn.num_heads == heads
    assert blk.attn.qkv.bias is not None
    assert blk.mlp.fc1.out_features == 4 * dim
    assert isinstance(blk.mlp.act, torch.nn.GELU) and blk.mlp.act.approximate == "none"
    assert blk.norm1.eps == 1e-6 and model.norm.eps == 1e-6
    assert model.cls_token is None
    assert tuple(model.pos_embed.shape) == (1, 64 * 48, dim)
    assert isinstance(blk.ls1, torch.nn.Identity)


def test_meta_alias_is_accepted() -> None:
    with torch.device("meta"):
        model = sapiens_kit.create_backbone("sapiens_0.3b")
    assert model.embed_dim == 1024


@pytest.mark.parametrize("name", sorted(sapiens_kit.list_backbones()))
def test_feature_map_contract(name: str) -> None:
    """Every registered backbone (shrunk to 2 layers) maps (B,3,H,W) -> (B,D,H/16,W/16)."""
    small = {"embed_dim": 32, "depth": 2, "num_heads": 2}
    model = sapiens_kit.create_backbone(name, img_size=(64, 48), **small).eval()
    out = model(torch.randn(2, 3, 64, 48))
    assert out.shape == (2, model.embed_dim, 4, 3)
    assert model.num_layers == 2
    # A different input size resamples the position embedding at run time.
    assert model(torch.randn(1, 3, 96, 64)).shape == (1, model.embed_dim, 6, 4)
    feats = model.forward_intermediates(torch.randn(1, 3, 64, 48), indices=[0, 1],
                                        intermediates_only=True)
    assert [f.shape for f in feats] == [(1, model.embed_dim, 4, 3)] * 2


def test_patch_padding_shifts_patches() -> None:
    """padding=2 keeps the grid at 1024x768-style sizes but sees the image shifted by 2 px."""
    plain = sapiens_kit.create_backbone("sapiens_test", img_size=(64, 48))
    padded = sapiens_kit.create_backbone("sapiens_test", img_size=(64, 48), patch_padding=2)
    padded.load_state_dict(plain.state_dict())
    assert padded.patch_embed.proj.padding == (2, 2)
    x = torch.randn(1, 3, 64, 48)
    assert padded(x).shape == plain(x).shape
    # Same weights: padding by hand then a plain conv on the shifted window gives equal embeddings.
    shifted = torch.nn.functional.pad(x, (2, 2, 2, 2))[..., :64, :48]
    expected = plain.patch_embed.proj(shifted)
    assert torch.allclose(padded.patch_embed.proj(x), expected, atol=1e-6)


def test_pretrained_metadata_consistent() -> None:
    for name in sapiens_kit.list_pretrained():
        cfg = sapiens_kit.get_pretrained_cfg(name)
        assert cfg.arch in sapiens_kit.list_backbones()
        assert cfg.name == name
        assert cfg.license in ("CC-BY-NC-4.0", "sapiens2-license")
        assert len(cfg.mean) == len(cfg.std) == 3
        assert cfg.hf_hub_id and cfg.hf_hub_filename
    seg = sapiens_kit.get_pretrained_cfg("sapiens_1b.seg_goliath")
    assert seg.num_classes == 28 and seg.task == "seg" and seg.patch_padding == 0
    assert sapiens_kit.get_pretrained_cfg("sapiens_0_3b.normal_render_people").patch_padding == 2
    # Official normalisation 123.675/58.395 on 0-255 equals ImageNet's on 0-1.
    assert sapiens_kit.get_pretrained_cfg("sapiens_0_3b").mean[0] * 255 == pytest.approx(123.675)


def test_unknown_backbone_lists_choices() -> None:
    with pytest.raises(ValueError, match="sapiens_0_3b"):
        sapiens_kit.create_backbone("sapiens_9b")


def test_sapiens2_backbone_plugs_into_a_task() -> None:
    from sapiens_kit.tasks import SegmentationTask

    task = SegmentationTask(
        backbone="sapiens2_0_1b", img_size=(64, 48), num_classes=3,
        backbone_overrides={"embed_dim": 32, "depth": 2, "num_heads": 2},
        head={"deconv_channels": [8, 8, 8], "conv_channels": [8, 8, 8]},
    )
    x = torch.randint(0, 255, (1, 3, 64, 48), dtype=torch.uint8)
    assert task(x).shape == (1, 3, 32, 24)
    with pytest.raises(ValueError, match="patch_padding=2"):
        sapiens_kit.create_backbone("sapiens2_0_1b", img_size=(64, 48), patch_padding=2)
