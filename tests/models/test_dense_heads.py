"""Official-layout depth/normal head state dicts load strictly, alone and in task checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sapiens_kit.models import create_backbone
from sapiens_kit.models._pretrained import WeightsError
from sapiens_kit.models.heads import DepthHead, NormalHead
from sapiens_kit.tasks import DepthTask, NormalTask
from tests.helpers import to_meta_keys

D = 32  # sapiens_test width

def _meta_backbone(img_size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """A random ``sapiens_test`` backbone state dict under Meta's mmpretrain key names."""
    model = create_backbone("sapiens_test", img_size=img_size)
    return {k: torch.randn_like(v) for k, v in to_meta_keys(model.state_dict()).items()}


def _official_head(deconv: list[int], conv: list[int], outputs: int) -> dict[str, torch.Tensor]:
    """Keys and shapes written out as the official VitHead/VitDepthHead/VitNormalHead store them:
    [ConvTranspose2d, IN, SiLU] and [Conv2d, IN, SiLU] triples, so indices step by 3."""
    sd: dict[str, torch.Tensor] = {}
    cin = D
    for i, c in enumerate(deconv):
        sd[f"deconv_layers.{3 * i}.weight"] = torch.randn(cin, c, 4, 4)
        cin = c
    for i, c in enumerate(conv):
        sd[f"conv_layers.{3 * i}.weight"] = torch.randn(c, cin, 1, 1)
        sd[f"conv_layers.{3 * i}.bias"] = torch.randn(c)
        cin = c
    sd["conv_seg.weight"] = torch.randn(outputs, cin, 1, 1)
    sd["conv_seg.bias"] = torch.randn(outputs)
    return sd


def test_official_depth_head_loads_strictly() -> None:
    sd = _official_head([384] * 4, [384] * 2, 1)
    assert sorted(sd) == sorted([
        "deconv_layers.0.weight", "deconv_layers.3.weight", "deconv_layers.6.weight",
        "deconv_layers.9.weight", "conv_layers.0.weight", "conv_layers.0.bias",
        "conv_layers.3.weight", "conv_layers.3.bias", "conv_seg.weight", "conv_seg.bias"])
    head = DepthHead(D)
    head.load_state_dict(sd, strict=True)
    head.eval()
    assert head(torch.randn(1, D, 4, 3)).shape == (1, 1, 64, 48)  # 16x: full resolution


def test_official_normal_head_loads_strictly() -> None:
    sd = _official_head([768] * 3, [768] * 3, 3)
    head = NormalHead(D)
    head.load_state_dict(sd, strict=True)
    head.eval()
    assert head(torch.randn(1, D, 4, 3)).shape == (1, 3, 32, 24)  # 8x, as the seg head


@pytest.mark.parametrize(("task_cls", "deconv", "conv", "outputs"), [
    (DepthTask, [24] * 4, [24] * 2, 1),
    (NormalTask, [24] * 3, [24] * 3, 3),
])
def test_full_task_checkpoint_with_meta_keys(
    tmp_path: Path, task_cls: type, deconv: list[int], conv: list[int], outputs: int
) -> None:
    img_size = (64, 48)
    backbone = _meta_backbone(img_size)
    head = _official_head(deconv, conv, outputs)
    ckpt = {"meta": {"mmengine_version": "0.x"},
            "state_dict": {**{f"backbone.{k}": v for k, v in backbone.items()},
                           **{f"decode_head.{k}": v for k, v in head.items()}}}
    path = tmp_path / "official_task.pth"
    torch.save(ckpt, path)
    task = task_cls(backbone="sapiens_test", weights=str(path), img_size=img_size,
                    head={"deconv_channels": deconv, "conv_channels": conv})
    for key, value in head.items():
        torch.testing.assert_close(task.head.state_dict()[key], value, rtol=0, atol=0)
    torch.testing.assert_close(task.backbone.norm.weight, backbone["ln1.weight"], rtol=0, atol=0)
    torch.testing.assert_close(task.backbone.blocks[1].mlp.fc1.weight,
                               backbone["layers.1.ffn.layers.0.0.weight"], rtol=0, atol=0)
    # A head of another layout (one conv fewer) is refused, naming the keys.
    bad = dict(ckpt["state_dict"])
    bad.pop(f"decode_head.conv_layers.{3 * (len(conv) - 1)}.weight")
    torch.save({"state_dict": bad}, path)
    with pytest.raises(WeightsError, match="missing"):
        task_cls(backbone="sapiens_test", weights=str(path), img_size=img_size,
                 head={"deconv_channels": deconv, "conv_channels": conv})


def test_normal_task_defaults_to_patch_padding_2() -> None:
    task = NormalTask(backbone="sapiens_test", img_size=(64, 48))
    assert task.hparams.patch_padding == 2 and task.backbone.patch_padding == 2
    assert DepthTask(backbone="sapiens_test", img_size=(64, 48)).hparams.patch_padding == 0
