"""A missing optional package is one ``error:`` line naming what to install, before any output.

The packages are made missing in-process: ``sys.modules[name] = None`` is how Python blocks an
import, so the code under test sees exactly what a venv without them shows.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sapiens_kit.errors import UserError
from sapiens_kit.utils.cli import report_errors
from sapiens_kit.utils.extras import is_installed

ONNX_LINE = 'error: ONNX export needs: pip install "sapiens-kit[onnx]"'


def _export_cfg(fmt: str, ckpt: Path) -> object:
    return OmegaConf.create({"format": fmt, "ckpt": str(ckpt), "overwrite": False, "task": None,
                             "tolerance": 1e-4, "opset": 18})


def test_is_installed_without_importing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_installed("json")
    assert not is_installed("sapiens_kit_no_such_package")
    monkeypatch.setitem(sys.modules, "json", None)
    assert not is_installed("json")


@pytest.mark.parametrize("missing", ["onnx", "onnxruntime"])
def test_onnx_export_without_the_extra_is_one_line_and_writes_nothing(
        missing: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from sapiens_kit.export import export

    monkeypatch.setitem(sys.modules, missing, None)
    out = tmp_path / "export"
    # The checkpoint is never read: the check comes first, so even a missing one gives this line.
    with pytest.raises(SystemExit) as exit_info:
        report_errors(export)(_export_cfg("onnx", tmp_path / "missing.ckpt"), out)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [ONNX_LINE]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_other_formats_do_not_need_the_onnx_extra(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    from sapiens_kit.export import export

    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(Exception) as err:  # gets past the check, to reading the checkpoint
        export(_export_cfg("torchscript", tmp_path / "missing.ckpt"), tmp_path / "export")
    assert "onnx" not in str(err.value)


def test_tensorboard_logger_without_tensorboard(monkeypatch: pytest.MonkeyPatch) -> None:
    from sapiens_kit.utils.config import instantiate_dict

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    group = OmegaConf.create({"tensorboard": {
        "_target_": "lightning.pytorch.loggers.TensorBoardLogger", "save_dir": "unused"}})
    with pytest.raises(UserError, match=r"^logger=tensorboard needs: pip install tensorboard$"):
        instantiate_dict(group)

