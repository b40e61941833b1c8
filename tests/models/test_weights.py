"""Official checkpoint layouts load strictly and give the numerics of a hand-made load."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import sapiens_kit
from sapiens_kit.models import WeightsError
from sapiens_kit.models._checkpoint import read_checkpoint
from sapiens_kit.models._pretrained import WeightsUnavailableError
from sapiens_kit.models.sapiens import fit_pos_embed
from sapiens_kit.tasks import SegmentationTask
from tests.helpers import meta_pretrain_state_dict, to_meta_keys

DIM, DEPTH = 32, 2


def load_by_hand(sd: dict[str, torch.Tensor], img_size: tuple[int, int], **kw: object):
    """An independent, key-by-key load of a Meta-layout state dict (the reference)."""
    model = sapiens_kit.create_backbone("sapiens_test", img_size=img_size, **kw)
    grid = (img_size[0] // 16, img_size[1] // 16)
    pos = sd["pos_embed"]
    if pos.shape[1] % 2:
        pos = pos[:, 1:]
    n = pos.shape[1]
    old = (64, 64) if n == 4096 else (64, 48)
    pos = pos.float().reshape(1, *old, DIM).permute(0, 3, 1, 2)
    pos = F.interpolate(pos, size=grid, mode="bicubic", align_corners=False)
    with torch.no_grad():
        model.pos_embed.copy_(pos.permute(0, 2, 3, 1).reshape(1, -1, DIM))
        model.patch_embed.proj.weight.copy_(sd["patch_embed.projection.weight"])
        model.patch_embed.proj.bias.copy_(sd["patch_embed.projection.bias"])
        for i, blk in enumerate(model.blocks):
            p = f"layers.{i}."
            blk.norm1.weight.copy_(sd[p + "ln1.weight"])
            blk.norm1.bias.copy_(sd[p + "ln1.bias"])
            blk.norm2.weight.copy_(sd[p + "ln2.weight"])
            blk.norm2.bias.copy_(sd[p + "ln2.bias"])
            blk.attn.qkv.weight.copy_(sd[p + "attn.qkv.weight"])
            blk.attn.qkv.bias.copy_(sd[p + "attn.qkv.bias"])
            blk.attn.proj.weight.copy_(sd[p + "attn.proj.weight"])
            blk.attn.proj.bias.copy_(sd[p + "attn.proj.bias"])
            blk.mlp.fc1.weight.copy_(sd[p + "ffn.layers.0.0.weight"])
            blk.mlp.fc1.bias.copy_(sd[p + "ffn.layers.0.0.bias"])
            blk.mlp.fc2.weight.copy_(sd[p + "ffn.layers.1.weight"])
            blk.mlp.fc2.bias.copy_(sd[p + "ffn.layers.1.bias"])
        model.norm.weight.copy_(sd["ln1.weight"])
        model.norm.bias.copy_(sd["ln1.bias"])
    return model.eval()


@pytest.mark.parametrize("img_size", [(1024, 768), (256, 192), (128, 96)])
def test_pretrain_clean_checkpoint_loads_strictly(tmp_path: Path, img_size) -> None:
    sd = meta_pretrain_state_dict(DIM, DEPTH)
    assert sd["pos_embed"].shape == (1, 4097, DIM)
    path = tmp_path / "sapiens_test_epoch_1600_clean.pth"
    torch.save(sd, path)
    model = sapiens_kit.create_backbone("sapiens_test", weights=str(path), img_size=img_size).eval()
    ref = load_by_hand(sd, img_size)
    x = torch.randn(1, 3, *img_size)
    assert torch.equal(model.pos_embed, ref.pos_embed)
    assert torch.equal(model(x), ref(x))


def test_resampling_is_bicubic_without_antialias() -> None:
    pos = torch.randn(1, 4097, 8)
    out = fit_pos_embed(pos, (64, 48))
    grid = pos[:, 1:].reshape(1, 64, 64, 8).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(64, 48), mode="bicubic", align_corners=False, antialias=False)
    assert torch.equal(out, ref.permute(0, 2, 3, 1).reshape(1, -1, 8))
    aa = F.interpolate(grid, size=(64, 48), mode="bicubic", align_corners=False, antialias=True)
    assert not torch.allclose(out, aa.permute(0, 2, 3, 1).reshape(1, -1, 8))


def _task_checkpoint(num_classes: int = 5, padding: int = 0) -> dict:
    backbone = sapiens_kit.create_backbone("sapiens_test", img_size=(1024, 768),
                                           patch_padding=padding)
    torch.nn.init.normal_(backbone.pos_embed, std=0.5)
    from sapiens_kit.models.heads import SegmentationHead

    head = SegmentationHead(DIM, num_classes, (16, 16, 16), (16, 16, 16))
    for p in head.parameters():
        torch.nn.init.normal_(p, std=0.1)
    sd = {f"backbone.{k}": v for k, v in to_meta_keys(backbone.state_dict()).items()}
    sd.update({f"decode_head.{k}": v.clone() for k, v in head.state_dict().items()})
    return {"state_dict": sd, "meta": {"epoch": 3}}


def test_official_seg_task_checkpoint_loads_backbone_and_head(tmp_path: Path) -> None:
    ckpt = _task_checkpoint()
    path = tmp_path / "sapiens_test_goliath_best_goliath_mIoU_7673_epoch_194.pth"
    torch.save(ckpt, path)
    sd = ckpt["state_dict"]
    keys = {k.split(".", 1)[1] for k in sd if k.startswith("decode_head.")}
    assert keys == {"deconv_layers.0.weight", "deconv_layers.3.weight", "deconv_layers.6.weight",
                    "conv_layers.0.weight", "conv_layers.0.bias", "conv_layers.3.weight",
                    "conv_layers.3.bias", "conv_layers.6.weight", "conv_layers.6.bias",
                    "conv_seg.weight", "conv_seg.bias"}
    task = SegmentationTask(
        backbone="sapiens_test", weights=str(path), img_size=(256, 192), num_classes=5,
        head={"deconv_channels": [16, 16, 16], "conv_channels": [16, 16, 16]},
    ).eval()
    for k, v in task.head.state_dict().items():
        assert torch.equal(v, sd[f"decode_head.{k}"]), k
    meta_backbone = {k.removeprefix("backbone."): v for k, v in sd.items()
                     if k.startswith("backbone.")}
    ref = load_by_hand(meta_backbone, (256, 192))
    x = torch.randint(0, 255, (1, 3, 256, 192), dtype=torch.uint8)
    assert torch.equal(task.backbone(task.normalize(x)), ref(task.normalize(x)))
    # The backbone alone also accepts a task checkpoint (the head part is returned, not lost).
    backbone = sapiens_kit.create_backbone("sapiens_test", weights=str(path), img_size=(256, 192))
    assert torch.equal(backbone.pos_embed, ref.pos_embed)


def test_new_class_count_reinitialises_only_the_last_layer(tmp_path: Path) -> None:
    path = tmp_path / "task.pth"
    ckpt = _task_checkpoint(num_classes=28)
    torch.save(ckpt, path)
    task = SegmentationTask(
        backbone="sapiens_test", weights=str(path), img_size=(64, 48), num_classes=3,
        head={"deconv_channels": [16, 16, 16], "conv_channels": [16, 16, 16]},
    )
    assert task.head.conv_seg.weight.shape[0] == 3
    assert torch.equal(task.head.conv_layers[0].weight,
                       ckpt["state_dict"]["decode_head.conv_layers.0.weight"])


def test_safetensors_and_lightning_ckpt_roundtrip(tmp_path: Path) -> None:
    model = sapiens_kit.create_backbone("sapiens_test", img_size=(64, 48))
    torch.nn.init.normal_(model.pos_embed)
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(st))
    loaded = sapiens_kit.create_backbone("sapiens_test", weights=str(st), img_size=(64, 48))
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    ckpt = tmp_path / "run.ckpt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in model.state_dict().items()},
                "pytorch-lightning_version": "2.6.0"}, ckpt)
    again = sapiens_kit.create_backbone("sapiens_test", weights=f"ckpt:{ckpt}", img_size=(64, 48))
    assert torch.equal(again.pos_embed, model.pos_embed)


def test_other_architecture_is_refused_with_key_names(tmp_path: Path) -> None:
    sd = meta_pretrain_state_dict(DIM, DEPTH)
    path = tmp_path / "clean.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match=r"missing keys.*blocks\.2\.") as err:
        sapiens_kit.create_backbone("sapiens_test", weights=str(path), depth=3)
    assert str(path) in str(err.value)
    with pytest.raises(WeightsError, match="shape mismatch"):
        sapiens_kit.create_backbone("sapiens_test", weights=str(path), embed_dim=64)
    sd["layers.0.extra.weight"] = torch.zeros(1)
    torch.save(sd, path)
    with pytest.raises(WeightsError, match=r"unexpected keys.*layers\.0\.extra"):
        sapiens_kit.create_backbone("sapiens_test", weights=str(path))


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        pickle.dump({"state_dict": {"x": _Evil()}}, f)
    torch.save({"payload": _Evil(), "w": torch.zeros(1)}, tmp_path / "evil2.pth")
    for p in (path, tmp_path / "evil2.pth"):
        with pytest.raises(WeightsError, match=r"refused|not a readable"):
            read_checkpoint(p)


def test_missing_file_and_offline_hub_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        sapiens_kit.create_backbone("sapiens_test", weights=str(tmp_path / "nope.pth"))
    with pytest.raises(WeightsUnavailableError, match="local path"):
        sapiens_kit.create_backbone("sapiens_test", weights="hf-hub:facebook/sapiens/x/y.pth")
    with pytest.raises(WeightsUnavailableError, match="weights=/path"):
        with torch.device("meta"):
            sapiens_kit.create_backbone("sapiens_0_3b", weights="sapiens_0_3b.pretrain_humans300m")


def test_random_init_fallback_is_opt_in(caplog: pytest.LogCaptureFixture) -> None:
    kw = dict(backbone="sapiens_test", img_size=(64, 48), num_classes=2,
              head={"deconv_channels": [8, 8, 8], "conv_channels": [8, 8, 8]})
    with pytest.raises(WeightsUnavailableError):
        SegmentationTask(weights="hf-hub:facebook/sapiens/a/b.pth", **kw)
    task = SegmentationTask(weights="hf-hub:facebook/sapiens/a/b.pth", allow_random_init=True,
                            **kw)
    assert "RANDOM" in caplog.text and task.head is not None


def test_hub_download_uses_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file already in the HF cache is found offline through the hf-hub: grammar."""
    from huggingface_hub import constants

    sd = meta_pretrain_state_dict(DIM, DEPTH)
    cache = Path(constants.HF_HUB_CACHE) / "models--org--repo"
    snap = cache / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (cache / "refs").mkdir()
    (cache / "refs" / "main").write_text("0" * 40)
    torch.save(sd, snap / "w.pth")
    model = sapiens_kit.create_backbone("sapiens_test", weights="hf-hub:org/repo/w.pth",
                                        img_size=(64, 48))
    assert model.pos_embed.shape == (1, 12, DIM)


def test_sapiens2_weights_load_from_file_and_lightning_layout(tmp_path: Path) -> None:
    kw = dict(img_size=(64, 48), embed_dim=32, depth=2, num_heads=2)
    src = sapiens_kit.create_backbone("sapiens2_0_1b", **kw).eval()
    st = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in src.model.state_dict().items()}, str(st))
    loaded = sapiens_kit.create_backbone("sapiens2_0_1b", weights=str(st), **kw).eval()
    x = torch.randn(1, 3, 64, 48)
    assert torch.equal(loaded(x), src(x))
    ckpt = tmp_path / "run.ckpt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in src.state_dict().items()}}, ckpt)
    again = sapiens_kit.create_backbone("sapiens2_0_1b", weights=str(ckpt), **kw).eval()
    assert torch.equal(again(x), src(x))
    with pytest.raises(WeightsError, match="Sapiens2"):
        sapiens_kit.create_backbone("sapiens2_0_1b", weights=str(st), img_size=(64, 48),
                                    embed_dim=64, depth=2, num_heads=2)
