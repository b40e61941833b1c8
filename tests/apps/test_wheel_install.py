"""The built wheel, installed without extras into a fresh virtual environment, runs every command.

This is what a new user gets from ``pip install sapiens-kit``: no system site packages, no source
tree on the path (the commands run from an empty folder with ``PYTHONPATH`` unset), no optional
packages. A demo training step, ``evaluate`` on its checkpoint, ``predict`` on a bundled photo
and a TorchScript ``export`` must each exit 0 and write their files; an ONNX export must ask for
the ``[onnx]`` extra in one line.

Slow (minutes: the install dominates), so run it on its own:
``pytest -m slow tests/apps/test_wheel_install.py -s`` (``-s`` prints the timings).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow

#: Generous: a cold pip cache downloads torch and its CUDA libraries.
INSTALL_TIMEOUT_S = 1800
COMMAND_TIMEOUT_S = 600


def _clean_env() -> dict[str, str]:
    """The caller's environment without anything that would put the source tree or the test
    venv on the installed interpreter's path, and offline for the model hub and W&B."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env.update(HF_HUB_OFFLINE="1", WANDB_MODE="disabled", PYTHONNOUSERSITE="1")
    return env


def _run(args: list[str], cwd: Path, timeout: int = COMMAND_TIMEOUT_S
         ) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    res = subprocess.run(args, cwd=cwd, env=_clean_env(), text=True, capture_output=True,
                         timeout=timeout)
    return res, time.perf_counter() - start


def _ok(res: subprocess.CompletedProcess[str], what: str) -> None:
    assert res.returncode == 0, f"{what} exited {res.returncode}:\n{res.stderr[-4000:]}"


def test_wheel_without_extras_trains_evaluates_predicts_and_exports(tmp_path: Path) -> None:
    timings: dict[str, float] = {}

    # Build the wheel the way the packaging test does (no build isolation: no network needed).
    dist = tmp_path / "dist"
    res, _ = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                   "-q", "-w", str(dist), str(REPO)], cwd=tmp_path, timeout=300)
    if res.returncode != 0 and "hatchling" in res.stderr:
        pytest.skip("hatchling not installed for no-isolation builds")
    _ok(res, "pip wheel")
    (wheel,) = dist.glob("*.whl")

    # A fresh venv that cannot see this interpreter's packages; pip may use its cache.
    venv = tmp_path / "venv"
    start = time.perf_counter()
    res, _ = _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    _ok(res, "python -m venv")
    python = str(venv / "bin" / "python")
    res, _ = _run([python, "-m", "pip", "install", "--progress-bar", "off", str(wheel)],
                  cwd=tmp_path, timeout=INSTALL_TIMEOUT_S)
    _ok(res, f"pip install {wheel.name}")
    timings["install"] = time.perf_counter() - start

    work = tmp_path / "work"  # not the repository: the source tree must not be importable
    work.mkdir()
    res, _ = _run([python, "-c", "import sapiens_kit, importlib.util as u; "
                   "print(sapiens_kit.__file__); print(u.find_spec('onnxruntime'))"], cwd=work)
    _ok(res, "import sapiens_kit")
    installed_file, onnxruntime_spec = res.stdout.split()
    assert Path(installed_file).is_relative_to(venv), installed_file
    assert onnxruntime_spec == "None", "the [onnx] extra was installed without being asked for"
    photos = sorted(Path(installed_file).parent.glob("assets/demo_seg/images/*.jpg"))
    assert photos, "the wheel ships no demo photos"

    # A demo training step on the bundled photos.
    run = work / "run"
    res, timings["train"] = _run(
        [python, "-m", "sapiens_kit.train", "task=seg", "backbone=sapiens_test",
         "img_size=[64,48]", "trainer.max_steps=1", "trainer.accelerator=cpu",
         "data.num_workers=0", "num_overlays=1", f"paths.output_dir={run}"], cwd=work)
    _ok(res, "train")
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    assert "val/mIoU" in json.loads((run / "metrics.json").read_text())

    # evaluate on the checkpoint (the task and size come from it), to a new folder.
    evaluated = work / "eval"
    res, timings["evaluate"] = _run(
        [python, "-m", "sapiens_kit.evaluate", f"ckpt={ckpt}", "trainer.accelerator=cpu",
         "data.num_workers=0", f"paths.output_dir={evaluated}"], cwd=work)
    _ok(res, "evaluate")
    assert 0 <= json.loads((evaluated / "metrics.json").read_text())["val/mIoU"] <= 1

    # predict on one bundled photo.
    predicted = work / "predictions"
    res, timings["predict"] = _run(
        [python, "-m", "sapiens_kit.predict", f"ckpt={ckpt}", f"input={photos[0]}",
         f"output={predicted}", "accelerator=cpu", f"paths.output_dir={work / 'predict_run'}"],
        cwd=work)
    _ok(res, "predict")
    stem = photos[0].stem
    assert (predicted / f"{stem}_mask.png").is_file()
    assert (predicted / f"{stem}_overlay.jpg").is_file()

    # TorchScript export: needs no extra.
    exported = work / "export"
    res, timings["export"] = _run(
        [python, "-m", "sapiens_kit.export", f"ckpt={ckpt}", "format=torchscript",
         f"output={exported}", f"paths.output_dir={work / 'export_run'}"], cwd=work)
    _ok(res, "export format=torchscript")
    assert (exported / "model.torchscript.pt").stat().st_size > 0
    assert json.loads((exported / "export_torchscript.json").read_text())["max_abs_diff"] <= 1e-4

    # ONNX export without the extra: one line naming it, and no output folder.
    onnx_out = work / "export_onnx"
    res, timings["export onnx (refused)"] = _run(
        [python, "-m", "sapiens_kit.export", f"ckpt={ckpt}", "format=onnx",
         f"output={onnx_out}", f"paths.output_dir={work / 'export_onnx_run'}"], cwd=work)
    assert res.returncode == 1, res.stderr[-4000:]
    assert 'error: ONNX export needs: pip install "sapiens-kit[onnx]"' in res.stderr
    assert "Traceback" not in res.stderr
    assert not onnx_out.exists()

    print("\nwheel install timings (s): "
          + ", ".join(f"{name} {seconds:.0f}" for name, seconds in timings.items()))
