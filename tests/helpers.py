"""Plain helpers shared by the test modules (fixtures live in ``conftest.py``).

Test modules import helpers from here and never from each other: state dicts named the way
Meta's checkpoints name their keys, generated data folders, tiny tasks and their checkpoints,
composed Hydra configs and short training runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from omegaconf import DictConfig

#: The repository checkout, and the real data bundled with the tests (COCO photos with their
#: COCO-WholeBody labels and person masks; see tests/fixtures/data/README.md).
REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = FIXTURES / "data"
#: Facts about the official models, bundled with the tests (the Goliath keypoint definitions).
REFERENCE_DIR = FIXTURES / "reference"

COLOURS = ((0, 0, 0), (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 0))

_TIMM_TO_META = (
    (r"^patch_embed\.proj\.", "patch_embed.projection."),
    (r"^blocks\.(\d+)\.norm1\.", r"layers.\1.ln1."),
    (r"^blocks\.(\d+)\.norm2\.", r"layers.\1.ln2."),
    (r"^blocks\.(\d+)\.attn\.", r"layers.\1.attn."),
    (r"^blocks\.(\d+)\.mlp\.fc1\.", r"layers.\1.ffn.layers.0.0."),
    (r"^blocks\.(\d+)\.mlp\.fc2\.", r"layers.\1.ffn.layers.1."),
    (r"^norm\.", "ln1."),
)


def to_meta_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a timm-layout Sapiens state dict to Meta's mmpretrain names."""
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in _TIMM_TO_META:
            key, n = re.subn(pattern, repl, key)
            if n:
                break
        out[key] = value.clone()
    return out


def meta_pretrain_state_dict(dim: int, depth: int, grid: int = 64) -> dict[str, torch.Tensor]:
    """A random pretrain ``*_clean.pth`` state dict: class token + (1, 1 + grid^2, D) pos_embed."""
    from sapiens_kit import create_backbone

    model = create_backbone("sapiens_test", img_size=(grid * 16, grid * 16), embed_dim=dim,
                            depth=depth)
    torch.nn.init.normal_(model.pos_embed, std=0.5)
    sd = to_meta_keys(model.state_dict())
    sd["pos_embed"] = torch.cat([torch.randn(1, 1, dim), sd["pos_embed"]], dim=1)
    sd["cls_token"] = torch.randn(1, 1, dim)
    return sd


def tiny_task(key: str, img_size: tuple[int, int] = (64, 48),
              head: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A random ``sapiens_test`` task with a small head (no training), in eval mode.

    The one tiny-task builder: tests that need another size, head or training mode pass
    ``img_size``/``head`` and call ``.train()`` on the result.
    """
    from sapiens_kit.utils.cli import TASK_CLASSES, import_class

    head = head if head is not None else {"deconv_channels": [16], "conv_channels": [16]}
    if key == "pose":
        kwargs.setdefault("keypoints", "coco17")
    if key == "seg":
        kwargs.setdefault("num_classes", 3)
        kwargs.setdefault("class_names", ["background", "part1", "part2"])
    cls = import_class(TASK_CLASSES[key])
    return cls(backbone="sapiens_test", img_size=img_size, head=head, **kwargs).eval()


def save_task_checkpoint(task: object, path: str | Path) -> Path:
    """Write ``task`` as the Lightning checkpoint a sapiens_kit run would (weights + hparams)."""
    import lightning

    cls = type(task)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams),
                "pytorch-lightning_version": lightning.__version__,
                "sapiens_kit": {"task_class": f"{cls.__module__}.{cls.__qualname__}"}}, path)
    return path


def unit(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (axis 1, the channel axis of a normal map) scaled to unit length."""
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Exact (bitwise) equality of nested checkpoint content."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def write_mask_folder(root: Path, n: int = 4, size: tuple[int, int] = (40, 30),
                      num_classes: int = 3, seed: int = 0) -> Path:
    """Seeded random images with blob masks in the mask-folder layout."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = size[0] + 2 * i, size[1] + i
        img = rng.integers(90, 170, (h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w), np.uint8)
        for c in range(1, num_classes):
            y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
            mask[y : y + 8, x : x + 8] = c
            img[y : y + 8, x : x + 8] = COLOURS[c % len(COLOURS)]
        cv2.imwrite(str(root / "images" / f"img{i}.png"), img)
        cv2.imwrite(str(root / "masks" / f"img{i}.png"), mask)
    names = ["background"] + [f"part{c}" for c in range(1, num_classes)]
    (root / "classes.json").write_text(json.dumps({"classes": names}))
    return root


def config_names(group: str) -> list[str]:
    """The sorted option names of a packaged config group, e.g. ``config_names("task")``."""
    from sapiens_kit.utils.config import CONFIG_DIR

    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def compose_cfg(*overrides: str, out: Path | None = None,
                config_name: str = "train") -> DictConfig:
    """Compose a packaged config (``train``, ``predict``, ``evaluate``, ``export``) outside a
    Hydra app.

    ``paths.output_dir`` is made concrete: ``out`` when given, else a placeholder unless an
    override already sets it (outside an app the default interpolates the Hydra run dir).
    """
    from hydra import compose, initialize_config_dir

    from sapiens_kit.utils.config import CONFIG_DIR

    extra: list[str] = []
    if out is not None:
        extra = [f"paths.output_dir={out}"]
    elif not any(o.startswith("paths.output_dir=") for o in overrides):
        extra = ["paths.output_dir=/tmp/unused"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=config_name, overrides=[*overrides, *extra])


def has_detector_configs() -> bool:
    """Whether the ``detector`` config group is packaged (``predict``'s person detectors)."""
    return bool(config_names("detector"))


def offline_detector() -> tuple[str, ...]:
    """``("detector=none",)`` where the ``detector`` group exists: the default detector needs
    downloaded weights, which offline tests do not have."""
    return ("detector=none",) if has_detector_configs() else ()


def predict_cfg(*overrides: str) -> DictConfig:
    """The ``predict`` app's config on the CPU, offline: ``detector=none`` unless a test picks a
    detector (the default one needs downloaded weights)."""
    if not any(o.startswith("detector=") for o in overrides):
        overrides = (*offline_detector(), *overrides)
    return compose_cfg("accelerator=cpu", *overrides, config_name="predict")


@dataclass
class FakeDetections:
    """The fields of ``sapiens_kit.detectors.Detections`` that the pipeline reads."""

    boxes: np.ndarray
    scores: np.ndarray
    source: str = "detector"


class FakeDetector:
    """A person detector that returns known boxes: ``boxes[file name]`` (x1 y1 x2 y2, score),
    nobody for other images. Records each call's image names (batching checks)."""

    def __init__(self, boxes: dict[str, list[list[float]]], batch_size: int = 2,
                 padding: float = 1.25) -> None:
        self.boxes, self.batch_size, self.padding = boxes, batch_size, padding
        self.calls: list[list[str]] = []

    def detect(self, images: list[np.ndarray], names: list[str]) -> list[FakeDetections]:
        assert len(images) == len(names)
        self.calls.append([Path(n).name for n in names])
        out = []
        for image, name in zip(images, names, strict=True):
            assert image.dtype == np.uint8 and image.ndim == 3
            rows = np.asarray(self.boxes.get(Path(name).name, []), np.float32).reshape(-1, 5)
            out.append(FakeDetections(rows[:, :4], rows[:, 4]))
        return out

    def check_inputs(self, names: list[str]) -> None:
        self.inputs = [Path(n).name for n in names]

    def to(self, device: object) -> FakeDetector:
        return self


def run_cfg(root: Path, out: Path, *overrides: str) -> DictConfig:
    """A short CPU seg run on sapiens_test: no logger, no overlays, no final re-validation."""
    return compose_cfg(
        "task=seg", "backbone=sapiens_test", "data=fake_seg", f"data.root={root}",
        "img_size=[32,32]", "data.augment=false", "trainer=cpu", "trainer.max_epochs=2",
        "model.warmup_steps=1", "model.head.deconv_channels=[8,8,8]",
        "model.head.conv_channels=[8,8,8]", "test_after_fit=false", "num_overlays=0", "~logger",
        "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false",
        "trainer.log_every_n_steps=1", *overrides, out=out,
    )


def kill_during_save(nth: int) -> None:
    """Patch ``torch.save`` so the ``nth`` save of ``last.ckpt`` writes half its bytes to the
    temporary file and then SIGKILLs the process: a kill in the middle of the write."""
    import io
    import os
    import signal

    import torch

    real_save, seen = torch.save, {"n": 0}

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        name = getattr(f, "name", "")
        if isinstance(name, str) and ".last.ckpt." in name:
            seen["n"] += 1
            if seen["n"] == nth:
                buf = io.BytesIO()
                real_save(obj, buf, *args, **kwargs)
                f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        real_save(obj, f, *args, **kwargs)

    torch.save = save  # type: ignore[assignment]
