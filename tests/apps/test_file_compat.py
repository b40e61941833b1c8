"""Files written by sapiens_kit 0.1.0 still load: Lightning checkpoints, Hub folders and
``export format=safetensors`` task files.

``tests/fixtures/format_0_1/<task>.json`` records the layout 0.1.0 wrote for each task (top-level
checkpoint keys, ``hyper_parameters``, the ``sapiens_kit`` block, state-dict names/shapes, the
safetensors metadata and ``config.json``). The test rebuilds each file from the record with
random tensors (no binary weights in git), loads it the ways a user would and checks the loaded
weights are exactly the ones written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from sapiens_kit.hub import from_pretrained
from sapiens_kit.predict import build_task, predict
from sapiens_kit.tasks.registry import load_task
from sapiens_kit.utils.config import asset_path
from tests.helpers import predict_cfg

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "format_0_1"
RECORDS = sorted(FIXTURES.glob("*.json"))
DTYPES = {"float32": torch.float32, "F32": torch.float32, "float16": torch.float16,
          "F16": torch.float16, "int64": torch.int64, "I64": torch.int64}
PHOTO = Path(asset_path("demo_seg")) / "images" / "000000000785.jpg"


def record(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def random_tensors(shapes: dict[str, list[Any]], seed: int) -> dict[str, torch.Tensor]:
    """Random tensors of the recorded shapes and dtypes."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, (shape, dtype) in shapes.items():
        out[name] = torch.randn(shape, generator=gen).to(DTYPES[dtype])
    return out


def write_checkpoint(rec: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """A ``.ckpt`` with exactly the recorded layout; returns its state dict."""
    from sapiens_kit.finetune.state import rng_state

    state = random_tensors(rec["state_dict"], seed=1)
    ckpt: dict[str, Any] = {key: {} for key in rec["top_keys"]}
    ckpt.update({"epoch": 0, "global_step": 1, "hparams_name": "kwargs",
                 "optimizer_states": [], "lr_schedulers": [],
                 "pytorch-lightning_version": rec["pytorch-lightning_version"],
                 "hyper_parameters": rec["hyper_parameters"], "state_dict": state})
    info: dict[str, Any] = {"task_class": rec["sapiens_kit"]["task_class"]}
    if rec["sapiens_kit"]["has_rng"]:
        info["rng"] = rng_state()
    ckpt["sapiens_kit"] = info
    assert sorted(ckpt) == rec["top_keys"]
    torch.save(ckpt, path)
    return state


def write_hub_folder(rec: dict[str, Any], folder: Path) -> dict[str, torch.Tensor]:
    """A Hub folder as ``push_to_hub`` 0.1.0 wrote it; returns its tensors."""
    hub = rec["hub_folder"]
    folder.mkdir(parents=True)
    state = random_tensors(hub["safetensors_tensors"], seed=2)
    save_file(state, str(folder / "model.safetensors"), metadata=hub["safetensors_metadata"])
    (folder / "config.json").write_text(json.dumps(hub["config_json"], indent=2))
    (folder / "README.md").write_text("---\nlibrary_name: sapiens-kit\n---\n\n# model\n")
    assert sorted(p.name for p in folder.iterdir()) == hub["files"]
    return state


def assert_weights(task: Any, state: dict[str, torch.Tensor]) -> None:
    got = task.state_dict()
    assert set(got) == set(state)
    for name, value in state.items():
        assert torch.equal(got[name], value), name


@pytest.mark.parametrize("path", RECORDS, ids=[p.stem for p in RECORDS])
def test_checkpoint_of_0_1_loads(path: Path, tmp_path: Path) -> None:
    rec = record(path)
    ckpt = tmp_path / "last.ckpt"
    state = write_checkpoint(rec, ckpt)
    key = rec["hub_folder"]["config_json"]["task"]
    task = load_task(ckpt, key)
    assert f"{type(task).__module__}.{type(task).__qualname__}" == rec["sapiens_kit"]["task_class"]
    assert_weights(task, state)
    assert task.hparams["img_size"] == rec["hyper_parameters"]["img_size"]


@pytest.mark.parametrize("path", RECORDS, ids=[p.stem for p in RECORDS])
def test_hub_folder_of_0_1_loads_and_predicts(path: Path, tmp_path: Path) -> None:
    rec = record(path)
    folder = tmp_path / "hub"
    state = write_hub_folder(rec, folder)
    key = rec["hub_folder"]["config_json"]["task"]
    assert_weights(from_pretrained(folder, task=key), state)
    assert_weights(from_pretrained(folder / "model.safetensors"), state)
    cfg = predict_cfg(f"task={key}", f"weights={folder}", f"input={PHOTO}")
    assert_weights(build_task(cfg), state)
    written = predict(cfg, tmp_path / "out")
    assert any(p.name.startswith(PHOTO.stem) for p in written)


@pytest.mark.parametrize("path", RECORDS, ids=[p.stem for p in RECORDS])
def test_export_file_of_0_1_loads(path: Path, tmp_path: Path) -> None:
    """0.1.0's ``export format=safetensors`` kept the run's ``weights`` and ``lora`` in the
    metadata (the tensors have LoRA merged): both are ignored when loading."""
    rec = record(path)
    hparams = {**rec["hyper_parameters"], "lora": {"r": 2, "alpha": 4}}
    meta = {"task_class": rec["sapiens_kit"]["task_class"], "hparams": json.dumps(hparams)}
    state = random_tensors(rec["hub_folder"]["safetensors_tensors"], seed=3)
    file = tmp_path / "model.safetensors"
    save_file(state, str(file), metadata=meta)
    task = from_pretrained(file)
    assert not task.hparams.get("lora")
    assert_weights(task, state)
