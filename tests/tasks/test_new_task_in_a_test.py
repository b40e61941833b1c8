"""A task is a closed unit: a new task defined entirely in this module runs through every app.

The task below is a 3-channel per-pixel regression ("reflectance", the unshaded surface colour,
as an albedo model predicts it) with its own dense target object, its own head size and its own
metric. Nothing under ``src/`` knows it: it reaches ``train``, ``evaluate``, ``predict`` (a
photo and a video), ``export`` and the Hub card only through the task registry (subclass
discovery), the task hooks and the target registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from omegaconf import DictConfig, OmegaConf
from torchmetrics import Metric

from sapiens_kit.data.targets import DenseTarget, get_target, register_target
from sapiens_kit.evaluate import evaluate
from sapiens_kit.export import export
from sapiens_kit.hub import from_pretrained, save_pretrained
from sapiens_kit.models.heads.depth import DepthHead
from sapiens_kit.predict import predict
from sapiens_kit.tasks.base import BaseTask
from sapiens_kit.tasks.dense import DenseTask, dense_demo_data, resize_output
from sapiens_kit.tasks.hooks import CardInfo
from sapiens_kit.tasks.registry import class_path, get_task_class, load_task, task_classes
from sapiens_kit.train import train
from sapiens_kit.utils.config import asset_path
from tests.helpers import compose_cfg

PHOTO = Path(asset_path("demo_seg")) / "images" / "000000040083.jpg"
KEY = "reflectance"


@register_target
@dataclass(frozen=True)
class ReflectanceTarget(DenseTarget):
    """Unshaded colour in [0, 1]: 3 channels, mirrors without a sign change, may rotate."""

    key: ClassVar[str] = KEY
    channels: ClassVar[int] = 3
    suffixes: ClassVar[tuple[str, ...]] = (".npy", ".png")
    rotatable: ClassVar[bool] = True

    def from_scene(self, scene: Any) -> np.ndarray | None:
        """The synthetic renderer's unshaded colour layer."""
        return scene.get("albedo")


class MaskedL1PSNR(Metric):
    """Mean absolute error and PSNR over the valid pixels of every image seen."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("abs_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sq_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> None:
        """``(B, 3, H, W)`` predictions and targets, ``(B, H, W)`` valid pixels."""
        keep = valid.bool().unsqueeze(1).expand_as(target)
        diff = (pred.float().clamp(0, 1) - target.float())[keep].double()
        self.abs_sum += diff.abs().sum()
        self.sq_sum += (diff**2).sum()
        self.count += diff.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        """``l1`` and ``psnr`` (dB, peak 1)."""
        n = self.count.clamp(min=1)
        mse = (self.sq_sum / n).clamp(min=1e-12)
        return {"l1": (self.abs_sum / n).float(), "psnr": (-10 * torch.log10(mse)).float()}


class ReflectanceTask(DenseTask):
    """Sapiens backbone + a 3-output upsampling head + masked L1."""

    key = KEY
    target_key = KEY
    media_kind = KEY
    card_info = CardInfo("reflectance estimation", "image-to-image", "albedo-estimation")

    def __init__(self, head: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.val_metrics = MaskedL1PSNR()

    def build_head(self, in_channels: int) -> torch.nn.Module:
        """The official depth head's layout with 3 outputs."""
        return DepthHead(in_channels, 3, **(self.hparams.head or {}))

    def loss(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """L1 on the valid pixels, at the label's size."""
        keep = valid.bool().unsqueeze(1).expand_as(target)
        return (resize_output(pred, target.shape[-2:]) - target.float()).abs()[keep].mean()

    def to_output(self, pred: torch.Tensor) -> torch.Tensor:
        """Colours ``(H, W, 3)`` in [0, 1]."""
        return pred[0].clamp(0, 1).permute(1, 2, 0)

    def display(self, pred: torch.Tensor) -> np.ndarray:
        """``(3, H, W)`` -> ``(H, W, 3)`` for the target's colour map."""
        return pred.clamp(0, 1).permute(1, 2, 0).numpy()

    @classmethod
    def demo_data(cls, root: Path) -> dict[str, Any]:
        """The generated figures with their unshaded colours."""
        return dense_demo_data(KEY, root)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/l1`` and ``val/psnr``."""
        result = self.val_metrics.compute()
        self.log_computed({f"val/{k}": v for k, v in result.items()}, prog_bar=("val/l1",))
        self.val_metrics.reset()


def task_cfg(cfg: DictConfig, tmp_path: Path) -> DictConfig:
    """Point a composed app config at :class:`ReflectanceTask` and its demo data."""
    base_args = set(BaseTask.__init__.__code__.co_varnames)
    model = {k: v for k, v in OmegaConf.to_container(cfg.model).items() if k in base_args}
    model.update({"_target_": class_path(ReflectanceTask), "backbone": "sapiens_test",
                  "img_size": "${img_size}", "allow_random_init": True,
                  "head": {"deconv_channels": [8], "conv_channels": [8]}})
    cfg.model = OmegaConf.create(model)
    cfg.data = OmegaConf.create(ReflectanceTask.demo_data(tmp_path / "data"))
    cfg.monitor, cfg.mode = "val/l1", "min"
    return cfg


def write_video(path: Path, frames: int = 3) -> Path:
    """A short mp4 of the photo panning left to right."""
    photo = cv2.resize(cv2.imread(str(PHOTO)), (64, 48))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 48))
    for i in range(frames):
        writer.write(np.roll(photo, 4 * i, axis=1))
    writer.release()
    return path


def test_the_task_and_its_target_are_found_by_the_registries() -> None:
    assert task_classes()[KEY] is ReflectanceTask
    assert get_task_class(KEY) is ReflectanceTask
    assert isinstance(get_target(KEY), ReflectanceTarget)
    assert not ReflectanceTask.__module__.startswith("sapiens_kit")


def test_a_task_defined_in_a_test_runs_through_every_app(tmp_path: Path) -> None:
    # train: two epochs on the generated figures, writing best/last checkpoints and metrics.
    cfg = task_cfg(compose_cfg("task=depth", "backbone=sapiens_test", "img_size=[64,48]",
                               "trainer=cpu", "trainer.max_epochs=2", "num_overlays=2",
                               "~logger", out=tmp_path / "run"), tmp_path)
    metrics, objs = train(cfg)
    model = objs["model"]
    assert isinstance(model, ReflectanceTask)
    assert {"val/l1", "val/psnr"} <= set(metrics)
    assert 0 <= metrics["val/l1"] <= 1 and metrics["val/psnr"] > 0
    best = tmp_path / "run" / "checkpoints" / "best.ckpt"
    assert best.is_file() and (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    overlays = sorted((tmp_path / "run" / "predictions").glob(f"*_{KEY}.png"))
    assert len(overlays) == 2
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["val/l1"] == pytest.approx(
        metrics["val/l1"])

    # The checkpoint names the test's class and comes back as it.
    again = load_task(best, KEY)
    assert isinstance(again, ReflectanceTask)

    # evaluate: the metric of the best checkpoint, recomputed from the file.
    eval_cfg = task_cfg(compose_cfg("task=depth", f"ckpt={best}", out=tmp_path / "eval",
                                    config_name="evaluate"), tmp_path)
    scores = evaluate(eval_cfg)
    assert scores["val/l1"] == pytest.approx(metrics["val/l1"], rel=1e-5)
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["val/l1"] == (
        pytest.approx(scores["val/l1"]))

    # predict: a photo and a video, through the target's files and colour map.
    video = write_video(tmp_path / "clip.mp4")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / PHOTO.name).write_bytes(PHOTO.read_bytes())
    video.rename(inputs / video.name)
    out = tmp_path / "pred"
    picked = f"model._target_={class_path(ReflectanceTask)}"  # what task=<key> would pick
    written = predict(compose_cfg("accelerator=cpu", picked, f"ckpt={best}", f"input={inputs}",
                                  config_name="predict"), out)
    stem = PHOTO.stem
    values = np.load(out / f"{stem}_{KEY}.npy")
    h, w = cv2.imread(str(PHOTO)).shape[:2]
    assert values.shape == (h, w, 3) and values.min() >= 0 and values.max() <= 1
    assert (out / f"{stem}_{KEY}.png") in written
    frames = sorted((out / "clip_frames").glob(f"*_{KEY}.npy"))
    assert len(frames) == 3 and np.load(frames[0]).shape == (48, 64, 3)
    cap = cv2.VideoCapture(str(out / "clip_overlay.mp4"))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = cap.read()
    cap.release()
    assert count == 3 and ok and frame.shape[:2] == (48, 128)  # the frame beside its colour map

    # export: the app checks the exported graph against the LightningModule.
    report = export(compose_cfg(picked, f"ckpt={best}", "format=torchscript",
                                config_name="export"),
                    tmp_path / "export")
    assert report["output_shape"][:2] == [1, 3]  # the raw head output: 3 channels
    assert report["max_abs_diff"] <= report["tolerance"]

    # Hub card and task file: the task's own title, and the same outputs after a round trip.
    folder = tmp_path / "hub"
    save_pretrained(again, folder, {"val/l1": 0.25}, "org/reflectance")
    card = ModelCard.load(folder / "README.md")
    assert card.data.pipeline_tag == "image-to-image"
    assert "reflectance estimation" in card.text and "| val/l1 | 0.25 |" in card.text
    assert json.loads((folder / "config.json").read_text())["task"] == KEY
    shared = from_pretrained(folder, task=KEY)
    x = torch.randint(0, 255, (1, 3, 64, 48), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(shared(x), again.eval()(x))
