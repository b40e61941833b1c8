"""The command-line apps end to end (subprocesses, like a user runs them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO as ROOT


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny seg run from a non-repository folder (the packaged conf must be found)."""
    from tests.helpers import write_mask_folder

    tmp = tmp_path_factory.mktemp("cli")
    data = write_mask_folder(tmp / "data")
    res = run("sapiens_kit.train", "task=seg", "backbone=sapiens_test", "data=mask_folder",
              f"data.root={data}", "data.num_workers=0", "img_size=[64,48]",
              "trainer.max_epochs=1", "trainer.accelerator=cpu", "num_overlays=1",
              f"paths.output_dir={tmp / 'run'}", cwd=tmp)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Outputs:" in res.stdout + res.stderr
    return tmp


def test_predict_writes_masks_at_input_size(trained: Path) -> None:
    out = trained / "pred"
    res = run("sapiens_kit.predict", "task=seg", f"ckpt={trained / 'run/checkpoints/best.ckpt'}",
              f"input={trained / 'data/images'}", f"output={out}", cwd=trained)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(list(out.glob("*_mask.png"))) == 4 and len(list(out.glob("*_overlay.jpg"))) == 4
    again = run("sapiens_kit.predict", f"ckpt={trained / 'run/checkpoints/best.ckpt'}",
                f"input={trained / 'data/images'}", f"output={out}", cwd=trained)
    assert again.returncode == 1 and "not empty" in again.stderr
    inside = run("sapiens_kit.predict", f"ckpt={trained / 'run/checkpoints/best.ckpt'}",
                 f"input={trained / 'data/images'}", f"output={trained / 'data/images/out'}",
                 cwd=trained)
    assert inside.returncode == 1 and "inside the input folder" in inside.stderr


def test_predict_bad_inputs_give_one_error_line(trained: Path) -> None:
    ckpt = trained / "run/checkpoints/best.ckpt"
    missing = run("sapiens_kit.predict", f"ckpt={ckpt}", f"input={trained / 'nope'}",
                  f"output={trained / 'p2'}", cwd=trained)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1].startswith("error:")
    assert "input does not exist" in missing.stderr
    wrong = run("sapiens_kit.predict", "task=depth", f"ckpt={ckpt}",
                f"input={trained / 'data/images'}", f"output={trained / 'p3'}", cwd=trained)
    assert wrong.returncode == 1 and "is for task 'seg', not task=depth" in wrong.stderr
    assert not (trained / "p3").exists()


def test_evaluate_prints_and_writes_metrics(trained: Path) -> None:
    res = run("sapiens_kit.evaluate", "task=seg", f"ckpt={trained / 'run/checkpoints/best.ckpt'}",
              "data=mask_folder", f"data.root={trained / 'data'}", "data.num_workers=0",
              "img_size=[64,48]", "trainer.accelerator=cpu",
              f"paths.output_dir={trained / 'eval'}", cwd=trained)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((trained / "eval/metrics.json").read_text())
    assert 0 <= metrics["val/mIoU"] <= 1
    assert "val/mIoU" in res.stdout


@pytest.mark.slow  # builds the wheel with pip: run with `pytest -m slow`
def test_wheel_ships_configs_and_demo(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True,
                         timeout=300)
    if res.returncode != 0 and "hatchling" in res.stderr:
        pytest.skip("hatchling not installed for no-isolation builds")
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "sapiens_kit/conf/train.yaml" in names
    assert "sapiens_kit/conf/task/seg.yaml" in names
    assert any(n.startswith("sapiens_kit/assets/demo_seg/images/") for n in names)
    assert "sapiens_kit/assets/classes/sapiens28.json" in names


def test_wandb_logger_goes_offline_without_login(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    from sapiens_kit.utils import loggers

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setattr(loggers, "wandb_is_logged_in", lambda: False)
    logger = loggers.wandb_logger(project="t", save_dir=str(tmp_path), log_model=True)
    assert logger._offline is True and logger._log_model is False


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_export_matches_the_lightning_module(trained: Path, fmt: str) -> None:
    from hydra import compose, initialize_config_dir

    from sapiens_kit.export import export
    from sapiens_kit.utils.config import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="export", overrides=[
            "task=seg", f"ckpt={trained / 'run/checkpoints/best.ckpt'}", f"format={fmt}",
            "paths.output_dir=/tmp/unused"])
    out = trained / f"export_{fmt}"
    report = export(cfg, out)
    assert Path(report["file"]).is_file() and report["max_abs_diff"] <= 1e-4
    assert report["output_shape"] == [1, 3, 32, 24]  # 3 classes, 8x the 4x3 token grid
    assert json.loads((out / f"export_{fmt}.json").read_text())["format"] == fmt
    from sapiens_kit.utils.cli import UserError

    with pytest.raises(UserError, match="already exists"):
        export(cfg, out)


def test_export_folds_lora_into_plain_weights() -> None:
    import torch

    from sapiens_kit.export import ExportModel
    from sapiens_kit.tasks import SegmentationTask

    task = SegmentationTask(backbone="sapiens_test", img_size=(64, 48), num_classes=3,
                            head={"deconv_channels": [8, 8, 8], "conv_channels": [8, 8, 8]},
                            lora={"r": 4, "alpha": 8}).eval()
    for name, param in task.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)  # adapters that change the output
    model = ExportModel(task).eval()
    assert not any("lora" in n for n, _ in model.named_parameters())
    x = torch.rand(1, 3, 64, 48) * 255
    with torch.no_grad():
        assert (model(x) - task(x)).abs().max() < 1e-4
