"""The ``weights=`` grammar (one parser), the one loader and the task's state-dict format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sapiens_kit.models import (
    PretrainedCfg,
    SapiensModel,
    WeightsError,
    WeightsSpec,
    create_backbone,
    parse_weights,
    resolve_source,
)
from sapiens_kit.tasks import SegmentationTask

SMALL = {"embed_dim": 32, "depth": 2, "num_heads": 2}


@pytest.mark.parametrize(("text", "expected"), [
    (None, None),
    ("", None),
    ("sapiens_1b.seg_goliath", WeightsSpec("registered", name="sapiens_1b.seg_goliath")),
    ("sapiens2_0_4b.fb", WeightsSpec("registered", name="sapiens2_0_4b.fb")),
    ("hf-hub:org/repo", WeightsSpec("hf-hub", repo_id="org/repo")),
    ("hf-hub:org/repo/a/b.pth", WeightsSpec("hf-hub", repo_id="org/repo", filename="a/b.pth")),
    ("/runs/a/best.ckpt", WeightsSpec("file", path=Path("/runs/a/best.ckpt"))),
    ("ckpt:/runs/a/best.ckpt", WeightsSpec("file", path=Path("/runs/a/best.ckpt"))),
    ("file:/w/model.safetensors", WeightsSpec("file", path=Path("/w/model.safetensors"))),
    ("sapiens_1b.not_a_tag", WeightsSpec("file", path=Path("sapiens_1b.not_a_tag"))),
])
def test_weights_grammar(text: str | None, expected: WeightsSpec | None) -> None:
    spec = parse_weights(text)
    assert spec == expected
    if spec is not None and not text.startswith(("ckpt:", "file:")):
        assert str(spec) == text  # round trip


def test_weights_grammar_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="hf-hub:<org>/<repo>"):
        parse_weights("hf-hub:org")
    with pytest.raises(WeightsError, match="must name a file"):
        resolve_source("hf-hub:org/repo")
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert resolve_source(tmp_path, repo_file="model.safetensors") == tmp_path / (
        "model.safetensors")
    assert parse_weights("~/w.pth").path == Path.home() / "w.pth"


def test_sapiens2_registered_weights_resolve_like_v1(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered entries of every family go through the same resolution (a local ``file``
    entry here; the Sapiens2 copy of the loader used to go to the Hub directly)."""
    from sapiens_kit.models import _registry

    src = create_backbone("sapiens2_0_1b", img_size=(64, 48), **SMALL).eval()
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in src.model.state_dict().items()}, str(path))
    entry = PretrainedCfg(arch="sapiens2_0_1b", tag="local", file=str(path))
    monkeypatch.setitem(_registry._PRETRAINED, "sapiens2_0_1b.local", entry)
    loaded = create_backbone("sapiens2_0_1b", weights="sapiens2_0_1b.local", img_size=(64, 48),
                             **SMALL).eval()
    x = torch.randn(1, 3, 64, 48)
    assert torch.equal(loaded(x), src(x))


#: The state-dict keys a tiny segmentation task had before SapiensModel existed: checkpoints,
#: task safetensors files and Hub folders written then hold exactly these.
SEG_KEYS_BEFORE = {
    *(f"backbone.blocks.{i}.{part}.{kind}" for i in (0, 1) for kind in ("weight", "bias")
      for part in ("attn.proj", "attn.qkv", "mlp.fc1", "mlp.fc2", "norm1", "norm2")),
    "backbone.norm.bias", "backbone.norm.weight", "backbone.patch_embed.proj.bias",
    "backbone.patch_embed.proj.weight", "backbone.pos_embed",
    *(f"head.conv_layers.{i}.{kind}" for i in (0, 3, 6) for kind in ("weight", "bias")),
    "head.conv_seg.bias", "head.conv_seg.weight",
    *(f"head.deconv_layers.{i}.weight" for i in (0, 3, 6)),
}


def _tiny_seg(**kwargs: object) -> SegmentationTask:
    return SegmentationTask(backbone="sapiens_test", img_size=(64, 48), num_classes=3,
                            head={"deconv_channels": [8, 8, 8], "conv_channels": [8, 8, 8]},
                            **kwargs)


def test_task_keys_and_files_of_the_earlier_format_still_load(tmp_path: Path) -> None:
    task = _tiny_seg().eval()
    assert set(task.state_dict()) == SEG_KEYS_BEFORE
    # A task safetensors file as written before (plain backbone.*/head.* keys) loads as weights.
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in task.state_dict().items()}, str(path))
    again = _tiny_seg(weights=str(path)).eval()
    x = torch.randint(0, 255, (1, 3, 64, 48), dtype=torch.uint8)
    assert torch.equal(again(x), task(x))


def test_task_runs_its_sapiens_model_without_owning_it_twice() -> None:
    task = _tiny_seg().eval()
    model = task.torch_model
    assert isinstance(model, SapiensModel)
    assert model.backbone is task.backbone and model.head is task.head
    assert not any(isinstance(m, SapiensModel) for m in task.modules())
    x = torch.randint(0, 255, (1, 3, 64, 48), dtype=torch.uint8)
    assert torch.equal(task(x), model(x))
    # Replacing the backbone is followed.
    task.backbone = create_backbone("sapiens_test", img_size=(64, 48))
    assert task.torch_model.backbone is task.backbone


def test_normalisation_stays_float32_under_a_bf16_model() -> None:
    """The constants are Python floats applied in float32, never cast with the model."""
    task = _tiny_seg().to(torch.bfloat16)
    assert not any("mean" in n or "std" in n for n in task.state_dict())
    x = torch.full((1, 3, 4, 4), 124, dtype=torch.uint8)
    out = task.normalize(x)
    assert out.dtype == torch.float32
    assert torch.allclose(out[0, 0], torch.tensor((124 - 123.675) / 58.395))
