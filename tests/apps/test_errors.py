"""The command-line apps' error style, end to end: a user mistake is one ``error:`` line on
stderr with exit status 1, names the key or file and what to do, leaves no run folder behind,
and (for command-line mistakes) is answered without importing torch or Lightning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Modules a command-line mistake or ``--help`` must not import.
HEAVY = ("torch", "lightning", "timm")


def run(*args: str, cwd: Path, importtime: bool = False,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("SAPIENS_KIT_DEBUG", "HYDRA_FULL_ERROR")}
    full = {**base, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", **(env or {})}
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-m", *args], cwd=cwd, env=full, text=True,
                          capture_output=True, timeout=600)


def imported(res: subprocess.CompletedProcess[str]) -> set[str]:
    """The top-level packages a ``-X importtime`` run imported."""
    names = set()
    for line in res.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def messages(res: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without ``-X importtime`` lines and log records."""
    return [line for line in res.stderr.splitlines()
            if line.strip() and not line.startswith(("import time:", "[", "INFO:"))]


def assert_one_error(res: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit status 1, exactly one ``error:`` line, no traceback; returns the line."""
    lines = messages(res)
    errors = [line for line in lines if line.startswith("error: ")]
    assert res.returncode == 1, res.stderr[-3000:]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    for text in expected:
        assert text in errors[0], errors[0]
    assert "HYDRA_FULL_ERROR" not in res.stderr and "use +" not in res.stderr
    return errors[0]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model.lrr=1"], ["model.lrr", "did you mean model.lr"]),
        (["trainer.max_step=2"], ["trainer.max_step", "trainer.max_steps"]),
        (["task=sge"], ["task=sge", "task=seg", "depth, normal, pose, seg"]),
        (["img_size=[250,190]"], ["img_size=[250,190]", "multiple", "img_size=[256,192]"]),
        (["data=mask_folder"], ["data.root", "data.root=..."]),
        (["model.lr=abc"], ["model.lr=abc", "number"]),
    ],
    ids=["key", "trainer-key", "group-option", "img-size", "missing-root", "text-for-number"],
)
def test_command_line_mistakes_are_one_line_without_torch(tmp_path: Path, overrides: list[str],
                                                          expected: list[str]) -> None:
    res = run("sapiens_kit.train", "backbone=sapiens_test", *overrides, cwd=tmp_path,
              importtime=True)
    assert_one_error(res, *expected)
    assert not imported(res) & set(HEAVY), imported(res) & set(HEAVY)
    assert not (tmp_path / "outputs").exists()  # no empty run folder left behind


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "export"])
def test_help_does_not_import_torch(tmp_path: Path, command: str) -> None:
    res = run(f"sapiens_kit.{command}", "--help", cwd=tmp_path, importtime=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Configuration groups" in res.stdout
    assert not imported(res) & set(HEAVY), imported(res) & set(HEAVY)


@pytest.mark.parametrize("variable", ["SAPIENS_KIT_DEBUG", "HYDRA_FULL_ERROR"])
def test_debug_flag_shows_the_traceback(tmp_path: Path, variable: str) -> None:
    res = run("sapiens_kit.train", "model.lrr=1", cwd=tmp_path, env={variable: "1"})
    assert res.returncode == 1 and "Traceback" in res.stderr


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pose checkpoint, a text file named .ckpt and a truncated checkpoint."""
    from tests.helpers import save_task_checkpoint, tiny_task

    folder = tmp_path_factory.mktemp("ckpts")
    pose = save_task_checkpoint(tiny_task("pose"), folder / "pose.ckpt")
    data = pose.read_bytes()
    (folder / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (folder / "notes.ckpt").write_text("not a checkpoint\n")
    return folder


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sapiens_kit.evaluate", "ckpt={d}/notes.ckpt"], ["notes.ckpt", "not a PyTorch"]),
        # Also in process (tests/utils/test_app.py); end to end they import torch: slow.
        pytest.param(["sapiens_kit.export", "ckpt={d}/truncated.ckpt"],
                     ["truncated.ckpt", "truncated"], marks=pytest.mark.slow),
        pytest.param(["sapiens_kit.train", "backbone=sapiens_test", "ckpt_path={d}/pose.ckpt"],
                     ["ckpt_path=", "'pose'", "'seg'", "task=pose"], marks=pytest.mark.slow),
    ],
    ids=["not-a-checkpoint", "truncated", "resume-other-task"],
)
def test_checkpoint_mistakes_are_one_line(tmp_path: Path, bad_checkpoints: Path,
                                          args: list[str], expected: list[str]) -> None:
    res = run(*(a.format(d=bad_checkpoints) for a in args), cwd=tmp_path)
    assert_one_error(res, *expected)
    assert "mmap" not in res.stderr
    assert not (tmp_path / "outputs").exists()


def test_data_errors_are_one_line(tmp_path: Path) -> None:
    res = run("sapiens_kit.train", "backbone=sapiens_test", "data=mask_folder",
              f"data.root={tmp_path / 'nowhere'}", cwd=tmp_path)
    assert_one_error(res, "nowhere", "does not exist")
    assert not (tmp_path / "outputs").exists()


def test_console_script_unknown_command(tmp_path: Path) -> None:
    code = ("import sys; from sapiens_kit.cli import main; "
            "sys.argv = ['sapiens-kit', 'trian']; main()")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, text=True,
                         capture_output=True, timeout=120)
    assert res.returncode == 1
    assert res.stderr.strip() == ("error: unknown command 'trian' (did you mean train? choose "
                                  "from train, evaluate, predict, export)")
