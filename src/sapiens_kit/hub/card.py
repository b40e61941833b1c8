"""The ``config.json`` and model card of a shared model.

The task supplies its own facts through its hooks (``card_info``, ``card_config()``,
``card_lines()``); the licence and the base model come from the registered weights' metadata.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sapiens_kit.errors import UserError
from sapiens_kit.tasks.registry import class_path, get_task_class, load_class, task_key

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"

#: Hub licence fields per base-weight licence (the registry's ``PretrainedCfg.license``).
LICENSES: dict[str, dict[str, str]] = {
    "CC-BY-NC-4.0": {"license": "cc-by-nc-4.0"},
    "sapiens2-license": {
        "license": "other", "license_name": "sapiens2-license",
        "license_link": "https://github.com/facebookresearch/sapiens2/blob/main/LICENSE.md",
    },
}
LICENSE_TEXT = {
    "CC-BY-NC-4.0": (
        "These weights are fine-tuned from Meta's Sapiens (v1) weights, released under "
        "[CC-BY-NC-4.0](https://creativecommons.org/licenses/by-nc/4.0/): **non-commercial use "
        "only**, with attribution. The same terms apply to this model."
    ),
    "sapiens2-license": (
        "These weights are fine-tuned from Meta's Sapiens2 weights, released under the "
        "[Sapiens2 License](https://github.com/facebookresearch/sapiens2/blob/main/LICENSE.md). "
        "It permits commercial use but forbids uses such as surveillance, biometric "
        "identification and deepfakes, and derivative models must be shared under the same "
        "agreement: this model is."
    ),
}


def _base_cfg(hparams: Mapping[str, Any]) -> Any:
    """The registry entry of the weights the backbone descends from, else ``None``."""
    from sapiens_kit.models import get_pretrained_cfg, is_registered_weights

    start = hparams.get("weights")
    name = start if isinstance(start, str) and is_registered_weights(start) else hparams["backbone"]
    try:
        return get_pretrained_cfg(str(name))
    except Exception:
        return None


def base_license(hparams: Mapping[str, Any]) -> str:
    """Licence of the weights the backbone descends from (v1 ``CC-BY-NC-4.0``, Sapiens2
    ``sapiens2-license``), from the weights registry; ``unknown`` for unregistered ones."""
    cfg = _base_cfg(hparams)
    return str(cfg.license) if cfg is not None else "unknown"


def base_model(hparams: Mapping[str, Any]) -> str | None:
    """The Hub repository of the base weights (the registry's ``hf_hub_id``), if any."""
    cfg = _base_cfg(hparams)
    return None if cfg is None else cfg.hf_hub_id


def model_config(task: Any, hparams: Mapping[str, Any],
                 metrics: Mapping[str, float]) -> dict[str, Any]:
    """The ``config.json`` contents: task, architecture, labels, input, metrics, licence."""
    import sapiens_kit

    start = {**hparams, "weights": task.hparams.get("weights")}
    cfg: dict[str, Any] = {
        "library": "sapiens_kit", "library_version": sapiens_kit.__version__,
        "task": task_key(task), "task_class": class_path(type(task)),
        "backbone": hparams["backbone"], "img_size": list(task.img_size),
        "mean": [round(float(v) / 255, 6) for v in task.pixel_mean.flatten()],
        "std": [round(float(v) / 255, 6) for v in task.pixel_std.flatten()],
        "base_weights": task.hparams.get("weights"), "base_license": base_license(start),
        "base_model": base_model(start), "metrics": dict(metrics), "hparams": hparams,
    }
    cfg.update(task.card_config())
    return cfg


def _task_class(config: Mapping[str, Any]) -> Any:
    """The task class a ``config.json`` describes (its stored class, else its key)."""
    try:
        return load_class(str(config["task_class"]))
    except UserError:  # a class that moved or is not installed here: its key still says it
        return get_task_class(str(config["task"]))


def model_card(config: Mapping[str, Any], repo_id: str | None) -> str:
    """A Hub model card (YAML front matter + markdown) for a ``config.json`` dict."""
    from huggingface_hub import ModelCard, ModelCardData

    cls = _task_class(config)
    lic = config["base_license"]
    info = cls.card_info
    base = config.get("base_model")
    if base is None and "base_model" not in config:  # written before base_model was stored
        base = base_model({"backbone": config["backbone"], "weights": config.get("base_weights")})
    data = ModelCardData(
        library_name="sapiens-kit", pipeline_tag=info.pipeline_tag, base_model=base,
        tags=["sapiens", "sapiens-kit", "lightning", info.tag, "human-centric"],
        **LICENSES.get(lic, {"license": "other", "license_name": lic}),
    )
    name = repo_id or "sapiens_kit model"
    h, w = config["img_size"]
    lines = [
        f"# {name}", "",
        f"A Sapiens model for **{info.title}**, fine-tuned with sapiens_kit (PyTorch Lightning + "
        "Hydra) from Meta's [Sapiens](https://github.com/facebookresearch/sapiens) weights.", "",
        "| | |", "|---|---|",
        f"| task | `{config['task']}` ({config['task_class'].rsplit('.', 1)[-1]}) |",
        f"| backbone | `{config['backbone']}` |",
        f"| started from | `{config['base_weights'] or 'random initialisation'}` |",
        f"| input | {h}x{w} RGB, mean {config['mean']}, std {config['std']} (0-1 scale) |",
    ]
    lines += cls.card_lines(config)
    lines += ["", "## Metrics", ""]
    if config["metrics"]:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in sorted(config["metrics"].items())]
    else:
        lines += ["No metrics were recorded with this checkpoint."]
    ref = f"hf-hub:{repo_id}" if repo_id else "<folder>"
    lines += [
        "", "## Use", "", "```python", "from sapiens_kit.hub import from_pretrained", "",
        f'task = from_pretrained("{ref}")  # a LightningModule, eval mode', "```", "",
        "```bash",
        f"python -m sapiens_kit.predict weights={ref}/{MODEL_FILE} input=photo.jpg",
        "```", "", "## Licence", "", LICENSE_TEXT.get(lic, f"Base weights: {lic}."), "",
        "## Citation", "",
        "Khirodkar et al., *Sapiens: Foundation for Human Vision Models*, ECCV 2024 "
        "(arXiv:2408.12569).", "",
    ]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)))


def run_metrics(ckpt: Path) -> dict[str, float]:
    """Metrics of a training run: its ``metrics.json`` (beside ``checkpoints/``), else the
    checkpoint's best monitored score."""
    path = ckpt.parent.parent / "metrics.json"
    if path.is_file():
        try:
            return {k: float(v) for k, v in json.loads(path.read_text()).items()}
        except (ValueError, TypeError, AttributeError):
            log.warning("%s: unreadable metrics, not put on the model card", path)
    meta = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    for name, state in (meta.get("callbacks") or {}).items():
        if "ModelCheckpoint" in str(name) and state.get("best_model_score") is not None:
            return {str(state.get("monitor") or "best_score"): float(state["best_model_score"])}
    return {}


__all__ = ["base_license", "base_model", "model_card", "model_config", "run_metrics"]
