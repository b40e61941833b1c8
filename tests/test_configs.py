"""Every config composes, and every task trains one fast-dev-run step with sapiens_test."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from sapiens_kit.utils.config import CONFIG_DIR

CONF = Path(CONFIG_DIR)
TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
BACKBONES = sorted(p.stem for p in (CONF / "backbone").glob("*.yaml"))


def compose_cfg(*overrides: str, out: Path | None = None) -> DictConfig:
    """Compose ``train.yaml`` outside a Hydra app (``paths.output_dir`` made concrete)."""
    extra = [f"paths.output_dir={out}"] if out else ["paths.output_dir=/tmp/unused"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=[*overrides, *extra])


def test_repo_conf_is_the_packaged_conf() -> None:
    repo_conf = Path(__file__).resolve().parents[1] / "conf"
    assert repo_conf.resolve() == CONF.resolve()


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_task_x_backbone_composes(task: str, backbone: str) -> None:
    cfg = compose_cfg(f"task={task}", f"backbone={backbone}")
    OmegaConf.resolve(cfg)
    assert cfg.model._target_.startswith("sapiens_kit.tasks.")
    assert cfg.model.backbone == backbone
    assert cfg.monitor.startswith("val/")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes(experiment: str) -> None:
    cfg = compose_cfg(f"experiment={experiment}")
    OmegaConf.resolve(cfg)
    assert cfg.model.lr > 0


def test_default_is_seg_demo_on_sapiens_0_3b() -> None:
    cfg = compose_cfg()
    OmegaConf.resolve(cfg)
    assert cfg.model._target_ == "sapiens_kit.tasks.SegmentationTask"
    assert cfg.model.backbone == "sapiens_0_3b"
    assert cfg.model.weights == "sapiens_0_3b.pretrain_humans300m"
    assert cfg.model.allow_random_init is True
    assert Path(cfg.data.root, "images").is_dir()
    # Real data switches the demo shortcuts off.
    real = compose_cfg("data=mask_folder", "data.root=/data/x")
    OmegaConf.resolve(real)
    assert real.model.allow_random_init is False
    assert list(real.img_size) == [1024, 768]
