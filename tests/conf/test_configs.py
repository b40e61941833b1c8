"""Every config composes, and every task trains one fast-dev-run step with sapiens_test."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sapiens_kit.utils.config import CONFIG_DIR
from tests.helpers import REPO, compose_cfg, config_names

CONF = Path(CONFIG_DIR)
TASKS = config_names("task")
EXPERIMENTS = config_names("experiment")
BACKBONES = config_names("backbone")


def test_repo_conf_is_the_packaged_conf() -> None:
    repo_conf = REPO / "conf"
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
