"""The pieces of the apps' error style, in process: key suggestions, size and type checks,
unwrapping Hydra's instantiation error, run-folder clean-up, checkpoint reading, lazy imports."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from sapiens_kit.errors import UserError
from sapiens_kit.utils import app
from sapiens_kit.utils.checks import check_img_size, check_missing, wrong_types
from sapiens_kit.utils.cli import user_message

KEYS = ["model", "model.lr", "model.lora", "model.lora.rank", "trainer", "trainer.max_steps",
        "trainer.max_epochs", "img_size"]


def test_closest_keys_prefers_siblings_then_paths() -> None:
    assert app.closest_keys("model.lrr", KEYS) == ["model.lr"]
    assert app.closest_keys("trainer.max_step", KEYS)[0] == "trainer.max_steps"
    assert app.closest_keys("modle.lr", KEYS)[0] == "model.lr"
    assert app.closest_keys("imgsize", KEYS) == ["img_size"]
    assert app.closest_keys("zzz.qqq", KEYS) == []


def test_mistyped_key_message_names_the_config_keys() -> None:
    keys = app.known_keys("train", ["backbone=sapiens_test", "model.lrr=1"], bad="model.lrr")
    assert "model.lr" in keys and "trainer.max_epochs" in keys and "hydra.run.dir" in keys
    message = app.unknown_key_message("model.lrr", keys, "train")
    assert message.startswith("model.lrr: no such key (did you mean model.lr")
    assert "+" not in message


def test_img_size_must_tile_the_patch_grid() -> None:
    assert check_img_size([256, 192]) == (256, 192)
    with pytest.raises(UserError, match=r"img_size=\[250,190\].*img_size=\[256,192\]"):
        check_img_size([250, 190])
    with pytest.raises(UserError, match="two integers"):
        check_img_size(["a", 3])
    with pytest.raises(UserError, match=r"use img_size=\[16,16\]"):
        check_img_size([0, 8])


def test_missing_values_are_named() -> None:
    cfg = OmegaConf.create({"data": {"root": "???", "size": 3}, "input": "???"})
    with pytest.raises(UserError, match=r"data.root, input are not set"):
        check_missing(cfg)


def test_text_for_a_float_is_refused_but_words_for_ints_pass() -> None:
    defaults = OmegaConf.create({"model": {"lr": 1e-4}, "trainer": {"devices": 1},
                                 "data": {"root": "???"}})
    cfg = OmegaConf.create({"model": {"lr": "abc"}, "trainer": {"devices": "auto"},
                            "data": {"root": "/x"}})
    overrides = ["model.lr=abc", "trainer.devices=auto", "data.root=/x"]
    assert wrong_types(cfg, overrides, defaults) == [
        "model.lr=abc: model.lr takes a number (default 0.0001)"]
    quoted = OmegaConf.create({"model": {"lr": "1e-3"}})  # model.lr='1e-3': text, but a number
    assert wrong_types(quoted, ["model.lr='1e-3'"], defaults) == []


def test_user_message_unwraps_instantiation_errors() -> None:
    from hydra.errors import InstantiationException
    from omegaconf.errors import MissingMandatoryValue

    try:
        try:
            raise UserError("data/x.json: bad file\nsecond line")
        except UserError as inner:
            raise InstantiationException("Error in call to target") from inner
    except InstantiationException as err:
        assert user_message(err) == "data/x.json: bad file; second line"
    missing = MissingMandatoryValue("Missing mandatory value: data.root")
    missing.full_key = "data.root"
    assert user_message(missing) == "data.root is not set: give it on the command line " \
                                    "(data.root=...)"
    assert user_message(ValueError("a bug")) is None


def _run_dir(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    from hydra.core.hydra_config import HydraConfig

    config = SimpleNamespace(runtime=SimpleNamespace(output_dir=str(folder)))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: config))


def _hydra_files(folder: Path) -> None:
    (folder / ".hydra").mkdir(parents=True)
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (folder / ".hydra" / name).write_text("{}\n")
    (folder / "train.log").write_text("")


def test_failed_run_folder_is_removed_only_when_it_holds_hydra_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    start = time.time()
    empty = tmp_path / "outputs/2026-01-01/10-00-00"
    _hydra_files(empty)
    (empty / "checkpoints").mkdir()
    _run_dir(monkeypatch, empty)
    assert app.remove_empty_run_dir(since=start)
    assert not (tmp_path / "outputs").exists()

    results = tmp_path / "outputs/2026-01-01/11-00-00"
    _hydra_files(results)
    (results / "metrics.json").write_text("{}")
    _run_dir(monkeypatch, results)
    assert not app.remove_empty_run_dir(since=start)
    assert (results / "metrics.json").is_file() and (results / "train.log").is_file()

    earlier = tmp_path / "outputs/2026-01-01/12-00-00"
    _hydra_files(earlier)
    for path in [*earlier.rglob("*")]:
        os.utime(path, (start - 3600, start - 3600))
    _run_dir(monkeypatch, earlier)
    assert not app.remove_empty_run_dir(since=start)  # not written by this command
    assert (earlier / ".hydra/config.yaml").is_file()

    _run_dir(monkeypatch, tmp_path)
    _hydra_files(tmp_path / "x")
    assert not app.remove_empty_run_dir(since=start)  # never the working directory


def test_read_checkpoint_names_the_file(tmp_path: Path) -> None:
    from sapiens_kit.utils.checkpoint_io import read_checkpoint
    from tests.helpers import save_task_checkpoint, tiny_task

    good = save_task_checkpoint(tiny_task("seg"), tmp_path / "good.ckpt")
    assert "sapiens_kit" in read_checkpoint(good)
    text = tmp_path / "text.ckpt"
    text.write_text("hello")
    with pytest.raises(UserError, match=r"text.ckpt: not a PyTorch checkpoint"):
        read_checkpoint(text)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(UserError, match=r"cut.ckpt: damaged or truncated"):
        read_checkpoint(cut)


def test_resuming_another_tasks_checkpoint_is_refused_up_front(tmp_path: Path) -> None:
    from sapiens_kit.utils.checks import check_resume
    from tests.helpers import save_task_checkpoint, tiny_task

    pose = save_task_checkpoint(tiny_task("pose"), tmp_path / "pose.ckpt")
    seg = OmegaConf.create({"model": {"_target_": "sapiens_kit.tasks.SegmentationTask"},
                            "ckpt_path": str(pose)})
    with pytest.raises(UserError, match=r"'pose' run, but this run trains task 'seg'.*task=pose"):
        check_resume(seg)
    check_resume(OmegaConf.merge(seg, {"model": {"_target_": "sapiens_kit.tasks.PoseTask"}}))
    check_resume(OmegaConf.merge(seg, {"ckpt_path": "last"}))  # Lightning's own names
    with pytest.raises(UserError, match="does not exist"):
        check_resume(OmegaConf.merge(seg, {"ckpt_path": str(tmp_path / "none.ckpt")}))


def test_public_names_stay_importable_lazily() -> None:
    import sapiens_kit
    from sapiens_kit import create_backbone, get_pretrained_cfg, list_backbones, list_pretrained

    assert callable(create_backbone) and callable(get_pretrained_cfg)
    assert "sapiens_test" in list_backbones() and isinstance(list_pretrained(), list)
    assert sapiens_kit.models.create_backbone is create_backbone
    with pytest.raises(AttributeError):
        _ = sapiens_kit.no_such_name


def test_lazy_names_behave_like_the_real_ones() -> None:
    from sapiens_kit.utils.lazy import lazy_attr, lazy_module, lazy_sequence

    json = lazy_module("json")
    assert json.dumps([1]) == "[1]"
    dumps = lazy_attr("json", "dumps")
    assert dumps({"a": 1}) == '{"a": 1}'
    commands = lazy_sequence("sapiens_kit.cli", "COMMANDS")  # a tuple constant
    assert "train" in commands and len(commands) == 4 and next(iter(commands)) == "train"
    assert (commands + ("x",))[-1] == "x"  # noqa: RUF005  (the operator is what is tested)
    assert (("y",) + commands)[0] == "y"  # noqa: RUF005
