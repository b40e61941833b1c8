"""Every run leaves last.ckpt and best.ckpt, records its data, and never overwrites results."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from sapiens_kit.callbacks.checkpoints import DATA_KEY
from sapiens_kit.errors import UserError
from sapiens_kit.evaluate import evaluate
from sapiens_kit.train import train
from tests.helpers import compose_cfg, run_cfg, write_mask_folder

SHORT = ("backbone=sapiens_test", "img_size=[32,32]", "trainer=cpu", "trainer.max_steps=2",
         "test_after_fit=false", "num_overlays=0", "~logger",
         "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false")
#: A small head per task (same layout as the task's own) and small data.
TASKS = {
    "seg": ("model.head.deconv_channels=[8,8,8]", "model.head.conv_channels=[8,8,8]"),
    "pose": ("model.head.deconv_channels=[8,8]", "model.head.conv_channels=[8,8]",
             "data.augment=false", "data.batch_size=2"),
    "depth": ("model.head.deconv_channels=[8,8,8,8]", "model.head.conv_channels=[8,8]",
              "data.demo_size=[6,2]", "data.demo_image_size=[32,32]"),
    "normal": ("model.head.deconv_channels=[8,8,8,8]", "model.head.conv_channels=[8,8]",
               "data.demo_size=[6,2]", "data.demo_image_size=[32,32]"),
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_a_two_step_run_writes_last_and_best(task: str, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    extra = TASKS[task]
    if task in ("depth", "normal"):
        extra = (*extra, f"data.cache_dir={tmp_path / 'cache'}")
    cfg = compose_cfg(f"task={task}", *SHORT, *extra, out=tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="sapiens_kit"):
        _, objs = train(cfg)
    ckpts = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert objs["trainer"].global_step == 2
    for name in ("best.ckpt", "last.ckpt"):
        content = torch.load(ckpts / name, map_location="cpu", weights_only=False)
        assert content["global_step"] == 2, name
        assert content[DATA_KEY]["_target_"] == cfg.data._target_
    if cfg.monitor not in objs["trainer"].callback_metrics:
        assert f"'{cfg.monitor}' was never computed" in caplog.text


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished two-step seg run: (its data folder, its run folder)."""
    tmp = tmp_path_factory.mktemp("seg_run")
    data = write_mask_folder(tmp / "data", size=(32, 32))
    cfg = run_cfg(data, tmp / "run", "trainer.max_epochs=1", "trainer.max_steps=2")
    train(cfg)
    (tmp / "run" / "metrics.json").write_text('{"val/mIoU": 0.5}')
    return data, tmp / "run"


def test_train_refuses_a_folder_with_results(seg_run: tuple[Path, Path]) -> None:
    data, run = seg_run
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    with pytest.raises(UserError, match="already holds results") as err:
        train(run_cfg(data, run, "trainer.max_steps=1"))
    assert "overwrite=true" in str(err.value) and "ckpt_path=" in str(err.value)
    assert str(run) in str(err.value) and "\n" not in str(err.value)
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before


def test_overwrite_replaces_the_results_as_a_whole(seg_run: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    data, _ = seg_run
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "epoch=7.ckpt").write_text("old")
    (run / "predictions").mkdir()
    (run / "predictions" / "old_overlay.jpg").write_text("old")
    (run / "metrics.json").write_text("{}")
    (run / "notes.txt").write_text("mine")
    train(run_cfg(data, run, "trainer.max_epochs=1", "trainer.max_steps=1", "overwrite=true"))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert not (run / "predictions").exists()  # this run writes no overlays
    assert not (run / "metrics.json").read_text() == "{}"
    assert (run / "notes.txt").read_text() == "mine"


def test_resume_into_its_own_folder_is_allowed(seg_run: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    import shutil

    data, src = seg_run
    run = tmp_path / "run"
    shutil.copytree(src, run)
    train(run_cfg(data, run, "trainer.max_epochs=3", "trainer.max_steps=3",
                  f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"))
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 3


def test_evaluate_uses_the_recorded_data_and_refuses_the_run_folder(
        seg_run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sapiens_kit.run_folder as run_folder

    data, run = seg_run
    last = run / "checkpoints" / "last.ckpt"
    metrics_before = (run / "metrics.json").read_text()
    # as if typed without data=: the config's data (the seg demo) is replaced by the record
    monkeypatch.setattr(run_folder, "data_given_on_command_line", lambda: False)
    cfg = compose_cfg(f"ckpt={last}", "trainer=cpu", "+trainer.enable_progress_bar=false",
                      config_name="evaluate", out=tmp_path / "eval")
    scores = evaluate(cfg)
    assert cfg.data.root == str(data) and "val/mIoU" in scores
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == scores
    with pytest.raises(UserError, match="already holds results"):
        evaluate(compose_cfg(f"ckpt={last}", "trainer=cpu", config_name="evaluate", out=run))
    assert (run / "metrics.json").read_text() == metrics_before


def test_evaluate_on_an_old_checkpoint_keeps_the_configs_data(
        seg_run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import sapiens_kit.run_folder as run_folder

    data, run = seg_run
    content = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu",
                         weights_only=False)
    del content[DATA_KEY]
    old = tmp_path / "old.ckpt"
    torch.save(content, old)
    monkeypatch.setattr(run_folder, "data_given_on_command_line", lambda: False)
    cfg = compose_cfg(f"ckpt={old}", "trainer=cpu", "data=mask_folder", f"data.root={data}",
                      "data.num_workers=0", config_name="evaluate", out=tmp_path / "eval")
    with caplog.at_level(logging.INFO, logger="sapiens_kit"):
        evaluate(cfg)
    assert "does not record the data" in caplog.text
