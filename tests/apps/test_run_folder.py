"""The apps as a user types them: a run folder is refused, evaluate finds the run's data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sapiens_kit.train import train
from tests.helpers import run_cfg, write_mask_folder


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=600)


@pytest.mark.slow
def test_evaluate_without_data_scores_the_runs_data_in_a_new_folder(tmp_path: Path) -> None:
    data = write_mask_folder(tmp_path / "data", size=(32, 32))
    out = tmp_path / "run"
    train(run_cfg(data, out, "trainer.max_epochs=1", "trainer.max_steps=1"))
    (out / "metrics.json").write_text('{"val/mIoU": 0.25}')
    last = out / "checkpoints" / "last.ckpt"
    # task= and data= left out: the checkpoint says both (the config's default is the seg demo)
    res = run("sapiens_kit.evaluate", f"ckpt={last}", "trainer.accelerator=cpu",
              f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "the data the run was trained with" in res.stdout + res.stderr
    assert str(data) in res.stdout + res.stderr
    assert "val/mIoU" in json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert (out / "metrics.json").read_text() == '{"val/mIoU": 0.25}'
    # Pointed at the run's own folder: one error line, nothing touched.
    res = run("sapiens_kit.evaluate", f"ckpt={last}", "trainer.accelerator=cpu",
              f"paths.output_dir={out}", cwd=tmp_path)
    assert res.returncode == 1
    last_line = res.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error:") and "overwrite=true" in last_line
    assert (out / "metrics.json").read_text() == '{"val/mIoU": 0.25}'
