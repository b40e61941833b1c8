"""Export a fine-tuned task: ``python -m sapiens_kit.export task=... ckpt=... format=onnx``.

The exported model takes float32 RGB images ``(B, 3, H, W)`` on a 0-255 scale at the model size
and returns the raw head output (seg logits, pose heatmaps, depth, normals); normalisation is built
in. Every export is checked against the LightningModule on the same input and the max abs
difference is printed and bounded by ``tolerance``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sapiens_kit.errors import UserError
from sapiens_kit.utils.app import hydra_app
from sapiens_kit.utils.cli import load_task, requested_task
from sapiens_kit.utils.lazy import lazy_attr, lazy_module

if TYPE_CHECKING:
    import torch

    from sapiens_kit.export_model import ExportModel
else:  # imported when a job runs: --help and command-line errors answer without torch
    torch = lazy_module("torch")
    ExportModel = lazy_attr("sapiens_kit.export_model", "ExportModel")

log = logging.getLogger("sapiens_kit")

FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "safetensors":
           "model.safetensors"}


def _export(model: ExportModel, task: Any, fmt: str, path: Path, x: torch.Tensor,
            opset: int) -> torch.Tensor:
    """Write ``path`` and return the exported model's output on ``x``."""
    match fmt:
        case "torchscript":
            traced = torch.jit.trace(model, x, check_trace=False)
            traced.save(str(path))
            return torch.jit.load(str(path))(x)
        case "onnx":
            import onnxruntime as ort

            torch.onnx.export(model, (x,), str(path), input_names=["images"],
                              output_names=["output"], opset_version=opset, dynamo=False,
                              dynamic_axes={"images": {0: "batch"}, "output": {0: "batch"}})
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
        case "safetensors":
            from sapiens_kit.hub.format import load_task_file, save_task_file

            save_task_file(task, path)
            fresh = load_task_file(path).eval()
            return ExportModel(fresh)(x)
    raise UserError(f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")


def export(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Export ``cfg.ckpt`` in ``cfg.format``; returns the parity report (also written as
    ``export_<format>.json``)."""
    if cfg.format not in FORMATS:
        raise UserError(f"unknown format '{cfg.format}' (choose from {', '.join(FORMATS)})")
    if cfg.format == "onnx":
        # An optional extra: checked before the checkpoint is read or any folder is made.
        from sapiens_kit.utils.extras import require

        require("ONNX export")
    path = out_dir / FORMATS[cfg.format]
    if path.exists() and not cfg.overwrite:
        raise UserError(f"{path}: already exists (pass overwrite=true)")
    task = load_task(cfg.ckpt, requested_task(cfg)).eval()
    model = ExportModel(task).eval()
    x = torch.rand(1, 3, *task.img_size) * 255
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("partial-" + path.name)
    try:
        with torch.no_grad():
            expected = task(x)
            got = _export(model, task, cfg.format, tmp, x, cfg.opset)
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    diff = float((got.float() - expected.float()).abs().max())
    report = {"format": cfg.format, "file": str(path), "input_shape": list(x.shape),
              "output_shape": list(expected.shape), "max_abs_diff": diff,
              "tolerance": cfg.tolerance}
    if diff > cfg.tolerance:
        tmp.unlink(missing_ok=True)
        raise UserError(f"export parity failed: max abs diff {diff:.3g} > {cfg.tolerance}")
    tmp.replace(path)
    (out_dir / f"export_{cfg.format}.json").write_text(json.dumps(report, indent=2))
    log.info("Exported %s (max abs diff vs LightningModule %.3g)", path, diff)
    return report


@hydra_app("export")
def main(cfg: DictConfig) -> None:
    """Hydra app wrapper around :func:`export`."""
    out = Path(cfg.output or Path(HydraConfig.get().runtime.output_dir) / "export")
    export(cfg, out)


if __name__ == "__main__":
    main()
