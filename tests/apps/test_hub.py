"""push_to_hub / from_pretrained against local folders and the HF cache layout (no network)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

from sapiens_kit.hub import from_pretrained, push_to_hub
from sapiens_kit.utils.cli import UserError
from tests.helpers import save_task_checkpoint, tiny_task

REPO = "sk-tests/tiny-seg"


def put_in_hf_cache(folder: Path, repo_id: str, cache: Path) -> None:
    """Lay ``folder``'s files out as ``hf_hub_download`` leaves a downloaded model repo."""
    sha = "0" * 40
    root = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, root / "snapshots" / sha)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(sha)


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def run_folder(tmp_path: Path, task: Any, metrics: dict[str, float] | None = None) -> Path:
    ckpt = save_task_checkpoint(task, tmp_path / "run" / "checkpoints" / "best.ckpt")
    if metrics is not None:
        (tmp_path / "run" / "metrics.json").write_text(json.dumps(metrics))
    return ckpt


def test_push_writes_weights_config_and_card(tmp_path: Path) -> None:
    task = tiny_task("seg")
    ckpt = run_folder(tmp_path, task, {"val/mIoU": 0.625, "val/aAcc": 0.9})
    out = Path(push_to_hub(ckpt, REPO, local_dir=tmp_path / "upload"))
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json",
                                                     "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "seg" and config["classes"] == ["background", "part1", "part2"]
    assert config["metrics"]["val/mIoU"] == 0.625 and config["base_license"] == "CC-BY-NC-4.0"
    card = ModelCard.load(out / "README.md")
    assert card.data.license == "cc-by-nc-4.0" and card.data.library_name == "sapiens-kit"
    assert "| 2 | part2 |" in card.text and "| val/mIoU | 0.625 |" in card.text
    assert "non-commercial" in card.text and f"hf-hub:{REPO}" in card.text


def test_pose_card_lists_keypoints_and_loads_back(tmp_path: Path) -> None:
    task = tiny_task("pose")
    ckpt = run_folder(tmp_path, task)
    out = Path(push_to_hub(ckpt, "sk-tests/pose", local_dir=tmp_path / "up"))
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "keypoint-detection"
    assert "17 (`coco17`)" in card.text and "0: nose" in card.text
    assert "No metrics were recorded" in card.text
    again = from_pretrained(out, task="pose")
    x = torch.randint(0, 255, (1, 3, 64, 48), dtype=torch.uint8)
    assert torch.equal(again(x), task(x))
    assert again.kset.names == task.kset.names


def test_sapiens2_card_carries_the_sapiens2_licence() -> None:
    from sapiens_kit.hub import base_license, model_card

    hparams = {"backbone": "sapiens2_0_4b", "weights": "sapiens2_0_4b.fb"}
    assert base_license(hparams) == "sapiens2-license"
    assert base_license({"backbone": "sapiens_1b", "weights": None}) == "CC-BY-NC-4.0"
    config = {"task": "normal", "task_class": "sapiens_kit.tasks.normal.NormalTask",
              "backbone": "sapiens2_0_4b", "base_weights": "sapiens2_0_4b.fb",
              "img_size": [1024, 768], "mean": [0.485, 0.456, 0.406],
              "std": [0.229, 0.224, 0.225], "metrics": {}, "base_license": "sapiens2-license"}
    card = ModelCard(model_card(config, "org/normals"))
    assert card.data.license == "other" and card.data.license_name == "sapiens2-license"
    assert "sapiens2/blob/main/LICENSE.md" in card.data.license_link
    assert "Sapiens2 License" in card.text


def test_load_back_from_hf_cache_offline(tmp_path: Path, hf_cache: Path) -> None:
    task = tiny_task("seg")
    folder = Path(push_to_hub(run_folder(tmp_path, task), REPO, local_dir=tmp_path / "up"))
    put_in_hf_cache(folder, REPO, hf_cache)
    x = torch.randint(0, 255, (2, 3, 64, 48), dtype=torch.uint8)
    for spec in (f"hf-hub:{REPO}", f"hf-hub:{REPO}/model.safetensors"):
        loaded = from_pretrained(spec, task="seg")
        assert not loaded.training
        assert torch.equal(loaded(x), task(x))
        assert loaded.class_names == ["background", "part1", "part2"]
    with pytest.raises(UserError, match="model is for task 'seg', not task=depth"):
        from_pretrained(f"hf-hub:{REPO}", task="depth")


def test_predict_with_hub_weights(tmp_path: Path, hf_cache: Path) -> None:
    from sapiens_kit.predict import predict
    from tests.helpers import predict_cfg

    folder = Path(push_to_hub(run_folder(tmp_path, tiny_task("seg")), REPO,
                              local_dir=tmp_path / "up"))
    put_in_hf_cache(folder, REPO, hf_cache)
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.full((30, 20, 3), 100, np.uint8))
    out = tmp_path / "pred"
    # The model file rebuilds its own task (classes, input size) without a checkpoint.
    predict(predict_cfg(f"weights=hf-hub:{REPO}", f"input={images}"), out)
    mask = cv2.imread(str(out / "a_mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (30, 20) and mask.max() < 3


def test_upload_goes_through_huggingface_hub(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import HfApi

    seen: dict[str, Any] = {}

    def create_repo(self: HfApi, repo_id: str, **kwargs: Any) -> str:
        seen["created"] = (repo_id, kwargs.get("private"), kwargs.get("exist_ok"))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self: HfApi, *, repo_id: str, folder_path: str, **kwargs: Any) -> str:
        seen["files"] = sorted(p.name for p in Path(folder_path).iterdir())
        seen["card"] = (Path(folder_path) / "README.md").read_text()
        return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    url = push_to_hub(run_folder(tmp_path, tiny_task("depth")), "sk-tests/depth",
                      private=True)
    assert url.endswith("/commit/abc")
    assert seen["created"] == ("sk-tests/depth", True, True)
    assert seen["files"] == ["README.md", "config.json", "model.safetensors"]
    assert "relative depth estimation" in seen["card"]


def test_push_refuses_other_tasks_and_bad_specs(tmp_path: Path) -> None:
    ckpt = run_folder(tmp_path, tiny_task("normal"))
    with pytest.raises(UserError, match="is for task 'normal', not task=seg"):
        push_to_hub(ckpt, REPO, local_dir=tmp_path / "x", task="seg")
    assert not (tmp_path / "x").exists()
    with pytest.raises(UserError, match="model file does not exist"):
        from_pretrained(tmp_path / "nowhere")
    plain = tmp_path / "plain.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(plain))
    with pytest.raises(UserError, match="not a sapiens_kit model file"):
        from_pretrained(plain)
