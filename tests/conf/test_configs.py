"""Every config composes, and every task trains one fast-dev-run step with sapiens_test."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

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


# ------------------------------------------------------------------ override-only presets
def _defaults(cfg_file: Path) -> list[str]:
    """The ``defaults`` entries of a preset file, as ``override /group: name`` strings."""
    raw = OmegaConf.load(cfg_file)
    return [f"{k}: {v}" for entry in raw.get("defaults", []) for k, v in entry.items()]


def _flat(node: object, prefix: str = "") -> dict[str, object]:
    """``{"model.lr": 5e-4, ...}`` for every leaf of a config subtree (lists are leaves)."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, object] = {}
    for key, value in node.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_overrides_only_what_differs(experiment: str, tmp_path: Path) -> None:
    """An experiment picks task, backbone and data and sets only values its presets don't hold;
    monitor/mode come from the task. It instantiates (data module and model, tiny backbone)."""
    path = CONF / "experiment" / f"{experiment}.yaml"
    groups = [entry.split(":")[0].split()[-1] for entry in _defaults(path)]
    assert groups == ["/task", "/backbone", "/data"], groups
    raw = OmegaConf.to_container(OmegaConf.load(path))
    assert isinstance(raw, dict)
    assert not {"monitor", "mode", "img_size"} & set(raw), "taken from the task and model presets"
    chosen = dict(entry.split(": ") for entry in _defaults(path))
    base = OmegaConf.to_container(compose_cfg(
        f"task={chosen['override /task']}", f"backbone={chosen['override /backbone']}",
        f"data={chosen['override /data']}"))
    assert isinstance(base, dict)
    from hydra.utils import get_class

    preset = _flat(base)
    task_cls = get_class(str(preset["model._target_"]))
    python_defaults = {f"model.{k}": v for k, v in _init_defaults(task_cls).items()}
    for key, value in _flat({k: v for k, v in raw.items() if k != "defaults"}).items():
        assert preset.get(key, python_defaults.get(key)) != value, f"{key}={value} is a default"
    # It composes and builds (tiny backbone, the experiment's data root made concrete).
    cfg = compose_cfg(f"experiment={experiment}", "backbone=sapiens_test", "img_size=[32,32]",
                      f"data.root={tmp_path}", *_required_data_keys(experiment))
    assert cfg.monitor == compose_cfg(f"task={chosen['override /task']}").monitor
    from sapiens_kit.utils.config import build_datamodule

    datamodule = build_datamodule(cfg)
    assert list(datamodule.img_size) == [32, 32]
    model = _instantiate_model(cfg)
    assert model.img_size == (32, 32)


def _init_defaults(cls: type) -> dict[str, object]:
    """Keyword defaults of every ``__init__`` in ``cls``'s chain (lists for tuples)."""
    import inspect

    out: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in klass.__dict__:
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.default is not inspect.Parameter.empty:
                    out[p.name] = list(p.default) if isinstance(p.default, tuple) else p.default
    return out


def _required_data_keys(experiment: str) -> list[str]:
    return ["data.train_ann=a.json", "data.val_ann=b.json"] if "goliath" in experiment and \
        experiment.startswith("pose") else []


def _instantiate_model(cfg: DictConfig) -> object:
    """The task of ``cfg.model`` with the facts a data module would report, without reading data."""
    from hydra.utils import instantiate

    facts = {"seg": {"num_classes": 3}, "pose": {"keypoints": "coco17"}}
    target = str(cfg.model._target_)
    extra = facts["seg"] if "Segmentation" in target else facts["pose"] if "Pose" in target else {}
    return instantiate(cfg.model, _convert_="all", **extra)


def test_model_presets_restate_no_python_default() -> None:
    """model/*.yaml hold only what differs from the task class (patch padding, heads, recipe);
    the keys every task shares are listed once, in finetune/default.yaml."""
    from hydra.utils import get_class

    shared = OmegaConf.to_container(OmegaConf.load(CONF / "finetune" / "default.yaml"))
    assert isinstance(shared, dict)
    for path in sorted((CONF / "model").glob("*.yaml")):
        raw = OmegaConf.to_container(OmegaConf.load(path))
        assert isinstance(raw, dict)
        for key in set(raw) & set(shared):  # e.g. pose's multistep schedule
            assert raw[key] != shared[key], f"{path.name} repeats finetune/default.yaml: {key}"
        defaults = _init_defaults(get_class(str(raw["_target_"])))
        for key, value in raw.items():
            if key in ("_target_", "img_size", "patch_padding", "head"):
                continue  # the size interpolation, and the official layout stated on purpose
            assert defaults.get(key, object()) != value or key in _DOCUMENTED_KNOBS, \
                f"{path.name}: {key}={value} is the Python default"
    for key, value in shared.items():
        assert _init_defaults(get_class("sapiens_kit.tasks.base.BaseTask"))[key] == value, key


#: Task options kept in the model presets although they equal the Python default: each is
#: documented there and set from the command line (model.dice_weight=0.5), which needs the key.
_DOCUMENTED_KNOBS = {"dice_weight", "depth_target", "alignment", "silog_lambda", "grad_weight",
                     "cosine_weight", "l1_weight", "loss", "ohkm_topk", "flip_test", "score_mode",
                     "keypoint_score_thr", "nms_thr", "gamma", "warmup_start_factor"}


# ---------------------------------------------------------------------- data and demo
DATA_BY_TASK = {"seg": ["mask_folder", "fake_seg", "hf_seg"],
                "pose": ["coco", "coco_wholebody", "goliath", "hf_pose"],
                "depth": ["depth_folder", "hf_depth"], "normal": ["normal_folder", "hf_normal"]}


@pytest.mark.parametrize("task", TASKS)
def test_data_choice_does_not_change_model_or_trainer(task: str) -> None:
    """Every data preset of a task gives the same model and trainer, and no data preset sets an
    input size (the task owns it); the demo data with demo=none gives that same model too."""
    def run_settings(*overrides: str) -> tuple[object, object, object]:
        cfg = compose_cfg(f"task={task}", "backbone=sapiens_1b", *overrides)
        assert "img_size" not in cfg.data
        return (OmegaConf.to_container(cfg.model), OmegaConf.to_container(cfg.trainer),
                OmegaConf.to_container(cfg.img_size))

    first, *others = DATA_BY_TASK[task]
    reference = run_settings(f"data={first}")
    for data in others:
        assert run_settings(f"data={data}") == reference, data
    assert run_settings("demo=none") == reference
    assert run_settings(f"data={first}", "data.root=/my/data") == reference


@pytest.mark.parametrize("task", TASKS)
def test_data_root_on_the_demo_preset_stops_with_one_error(task: str, tmp_path: Path) -> None:
    from sapiens_kit.train import build, check_demo
    from sapiens_kit.utils.cli import UserError

    demo = compose_cfg(f"task={task}")
    check_demo(demo)  # the demo on its own data is fine
    cfg = compose_cfg(f"task={task}", f"data.root={tmp_path}")
    with pytest.raises(UserError, match=rf"data.root={tmp_path} is not the demo's data.*add "
                                        rf"data={DATA_BY_TASK[task][0]}"):
        build(cfg)
    check_demo(compose_cfg(f"task={task}", f"data.root={tmp_path}", "demo=none"))


def test_data_root_on_the_demo_preset_cli_error(tmp_path: Path) -> None:
    """The command line prints one ``error:`` line and exits with status 1, no traceback."""
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "sapiens_kit.train", "task=seg", f"data.root={tmp_path}",
         f"paths.output_dir={tmp_path / 'out'}"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr[-2000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "add data=mask_folder" in errors[0] and "demo=none" in errors[0]
    assert "Traceback" not in res.stderr


def test_trainer_step_and_batch_limits_need_no_plus() -> None:
    cfg = compose_cfg("trainer.max_steps=3", "trainer.limit_train_batches=2",
                      "trainer.limit_val_batches=1")
    assert (cfg.trainer.max_steps, cfg.trainer.limit_train_batches,
            cfg.trainer.limit_val_batches) == (3, 2, 1)
    # `+` keeps working where the default is null (older commands wrote +trainer.limit_*).
    assert compose_cfg("+trainer.limit_val_batches=0").trainer.limit_val_batches == 0


def test_img_size_is_owned_by_the_model_and_handed_to_the_data() -> None:
    from sapiens_kit.utils.config import build_datamodule

    cfg = compose_cfg("img_size=[64,48]")
    assert list(cfg.model.img_size) == [64, 48]
    assert list(build_datamodule(cfg).img_size) == [64, 48]
    assert list(compose_cfg().model.img_size) == [256, 192]  # the demo's size
    real = compose_cfg("data=mask_folder", "data.root=/x")
    assert list(real.model.img_size) == [1024, 768]
