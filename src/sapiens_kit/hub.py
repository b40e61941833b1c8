"""Share fine-tuned tasks on the Hugging Face Hub and load them back.

A shared model is a folder of three files:

- ``model.safetensors``: the task's weights (backbone + head, LoRA merged), with the task class
  and its constructor arguments in the safetensors metadata (the same layout ``export
  format=safetensors`` writes), so the task is rebuilt without Hydra or a Lightning checkpoint;
- ``config.json``: the same facts, readable without loading the weights;
- ``README.md``: a generated model card (task, classes or keypoints, metrics, base-weight licence).

``push_to_hub(ckpt, "org/name")`` uploads it (``local_dir=`` writes the folder instead);
``from_pretrained("hf-hub:org/name")``, or ``weights=hf-hub:org/name/model.safetensors`` on the
command line, loads it back, from the local Hugging Face cache when the file is there.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sapiens_kit.utils.cli import TASK_CLASSES, UserError, import_class, load_task

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
TASK_INFO = {  # task key -> (title, hub pipeline tag, tag)
    "seg": ("body-part segmentation", "image-segmentation", "semantic-segmentation"),
    "pose": ("2D pose estimation", "keypoint-detection", "pose-estimation"),
    "depth": ("relative depth estimation", "depth-estimation", "depth-estimation"),
    "normal": ("surface-normal estimation", "image-to-image", "surface-normal-estimation"),
}


# ---------------------------------------------------------------------------------- saving
def task_key(task: Any) -> str:
    """The short key (``seg``, ``pose``, ...) of a task object."""
    cls = type(task)
    path = f"{cls.__module__}.{cls.__qualname__}"
    for key, target in TASK_CLASSES.items():
        if target == path or target.rsplit(".", 1)[-1] == cls.__name__:
            return key
    raise UserError(f"{path} is not one of the kit's tasks ({', '.join(TASK_CLASSES)})")


def _plain(task: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """State dict with LoRA merged, and the arguments that rebuild it without LoRA."""
    hparams = dict(task.hparams)
    if hasattr(task, "plain_state_dict"):
        state = task.plain_state_dict()
        if "lora" in hparams:
            hparams["lora"] = None
    else:
        state = task.state_dict()
    # A fresh task must not try to reach the weights the run started from.
    hparams.update(weights=None, allow_random_init=False)
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}, hparams


def base_license(hparams: Mapping[str, Any]) -> str:
    """Licence of the weights the backbone descends from (v1 ``CC-BY-NC-4.0``, Sapiens2
    ``sapiens2-license``)."""
    from sapiens_kit.models import get_pretrained_cfg, is_registered_weights

    start = hparams.get("weights")
    name = start if isinstance(start, str) and is_registered_weights(start) else hparams["backbone"]
    try:
        return get_pretrained_cfg(name).license
    except Exception:
        return "sapiens2-license" if str(hparams["backbone"]).startswith("sapiens2") \
            else "CC-BY-NC-4.0"


def model_config(task: Any, hparams: Mapping[str, Any],
                 metrics: Mapping[str, float]) -> dict[str, Any]:
    """The ``config.json`` contents: task, architecture, labels, input, metrics, licence."""
    import sapiens_kit

    key = task_key(task)
    cls = type(task)
    cfg: dict[str, Any] = {
        "library": "sapiens_kit", "library_version": sapiens_kit.__version__,
        "task": key, "task_class": f"{cls.__module__}.{cls.__qualname__}",
        "backbone": hparams["backbone"], "img_size": list(task.img_size),
        "mean": [round(float(v) / 255, 6) for v in task.pixel_mean.flatten()],
        "std": [round(float(v) / 255, 6) for v in task.pixel_std.flatten()],
        "base_weights": task.hparams.get("weights"), "base_license": base_license(hparams),
        "metrics": dict(metrics), "hparams": hparams,
    }
    if key == "seg":
        cfg["classes"] = list(task.class_names)
    if key == "pose":
        cfg["keypoint_set"] = task.kset.name
        cfg["keypoints"] = list(task.kset.names)
    return cfg


def model_card(config: Mapping[str, Any], repo_id: str | None) -> str:
    """A Hub model card (YAML front matter + markdown) for a ``config.json`` dict."""
    from huggingface_hub import ModelCard, ModelCardData

    key, lic = config["task"], config["base_license"]
    title, pipeline, tag = TASK_INFO[key]
    base = "timm/" if str(config["backbone"]).startswith("sapiens2") else "facebook/sapiens"
    data = ModelCardData(
        library_name="sapiens-kit", pipeline_tag=pipeline, base_model=base,
        tags=["sapiens", "sapiens-kit", "lightning", tag, "human-centric"],
        **LICENSES.get(lic, {"license": "other", "license_name": lic}),
    )
    name = repo_id or "sapiens_kit model"
    h, w = config["img_size"]
    lines = [
        f"# {name}", "",
        f"A Sapiens model for **{title}**, fine-tuned with sapiens_kit (PyTorch Lightning + "
        "Hydra) from Meta's [Sapiens](https://github.com/facebookresearch/sapiens) weights.", "",
        "| | |", "|---|---|",
        f"| task | `{key}` ({config['task_class'].rsplit('.', 1)[-1]}) |",
        f"| backbone | `{config['backbone']}` |",
        f"| started from | `{config['base_weights'] or 'random initialisation'}` |",
        f"| input | {h}x{w} RGB, mean {config['mean']}, std {config['std']} (0-1 scale) |",
    ]
    if key == "seg":
        lines += [f"| classes | {len(config['classes'])} |", "", "## Classes", "",
                  "| id | name |", "|---|---|"]
        lines += [f"| {i} | {n} |" for i, n in enumerate(config["classes"])]
    if key == "pose":
        names = config["keypoints"]
        lines += [f"| keypoints | {len(names)} (`{config['keypoint_set']}`) |", "",
                  "## Keypoints", "", ", ".join(f"{i}: {n}" for i, n in enumerate(names))]
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


def save_pretrained(task: Any, folder: str | Path, metrics: Mapping[str, float] | None = None,
                    repo_id: str | None = None) -> list[Path]:
    """Write ``model.safetensors``, ``config.json`` and ``README.md`` for ``task`` into ``folder``.

    Returns:
        The written paths.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state, hparams = _plain(task)
    config = model_config(task, hparams, metrics or {})
    meta = {"format": "pt", "library": "sapiens_kit", "task_class": config["task_class"],
            "hparams": json.dumps(hparams, default=str)}
    save_file(state, str(folder / MODEL_FILE), metadata=meta)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))
    (folder / CARD_FILE).write_text(model_card(config, repo_id))
    return [folder / MODEL_FILE, folder / CONFIG_FILE, folder / CARD_FILE]


def push_to_hub(
    ckpt: str | Path,
    repo_id: str,
    *,
    local_dir: str | Path | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload sapiens_kit model",
    metrics: Mapping[str, float] | None = None,
    task: str | None = None,
) -> str:
    """Upload a fine-tuned checkpoint to the Hub as weights + config + model card.

    Args:
        ckpt: A sapiens_kit Lightning checkpoint (``run/checkpoints/best.ckpt``).
        repo_id: ``org/name`` on the Hub (created when missing).
        local_dir: Write the files into this folder instead of uploading (a dry run, or for
            ``huggingface-cli upload`` later).
        private: Create the repository private.
        token: Hub token (default: the logged-in one).
        commit_message: Commit message of the upload.
        metrics: Metrics for the card (default: the run's ``metrics.json`` or the checkpoint's
            best score).
        task: Expected task key; a checkpoint of another task is refused.

    Returns:
        The folder written (``local_dir``) or the URL of the commit.
    """
    ckpt = Path(ckpt)
    model = load_task(ckpt, task)
    scores = dict(metrics) if metrics is not None else run_metrics(ckpt)
    if local_dir is not None:
        files = save_pretrained(model, local_dir, scores, repo_id)
        log.info("Wrote %s", ", ".join(str(f) for f in files))
        return str(local_dir)
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="sapiens_kit_hub_") as tmp:
        save_pretrained(model, tmp, scores, repo_id)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(repo_id=repo_id, folder_path=tmp,
                                 commit_message=commit_message, repo_type="model")
    url = str(getattr(info, "commit_url", info))
    log.info("Pushed %s to %s", ckpt, url)
    return url


# ---------------------------------------------------------------------------------- loading
def model_file(spec: str | Path) -> Path:
    """Local path of a shared model: ``hf-hub:org/name[/file]``, a folder or a file.

    ``hf-hub:`` specs are looked up in the Hugging Face cache first and downloaded only when
    missing (never with ``HF_HUB_OFFLINE=1``).
    """
    from sapiens_kit.models import hub_download, parse_hf_hub

    text = str(spec)
    if text.startswith("hf-hub:"):
        body = text.removeprefix("hf-hub:").strip("/")
        if body.count("/") == 1:
            return hub_download(body, MODEL_FILE)
        return hub_download(*parse_hf_hub(text))
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise UserError(f"{path}: model file does not exist")
    return path


def read_task_metadata(path: Path) -> dict[str, str] | None:
    """The ``task_class``/``hparams`` metadata of a kit safetensors file, else ``None``."""
    if path.suffix != ".safetensors":
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:
        raise UserError(f"{path}: not a readable safetensors file ({err})") from err
    return meta if "task_class" in meta and "hparams" in meta else None


def from_pretrained(spec: str | Path, task: str | None = None, **overrides: Any) -> Any:
    """Rebuild a task saved by :func:`save_pretrained` / :func:`push_to_hub` (or ``export
    format=safetensors``), in eval mode.

    Args:
        spec: ``hf-hub:org/name`` (file ``model.safetensors``), ``hf-hub:org/name/file``, a
            folder holding ``model.safetensors``, or the file itself.
        task: Expected task key (``seg``, ``pose``, ...); another task's model is refused.
        **overrides: Constructor arguments to change (e.g. ``flip_test=False``).
    """
    path = model_file(spec)
    meta = read_task_metadata(path)
    if meta is None:
        raise UserError(f"{path}: not a sapiens_kit model file (no task metadata); for official "
                        "weights give task=... and weights=...")
    cls_path = meta["task_class"]
    if task is not None:
        if task not in TASK_CLASSES:
            raise UserError(f"unknown task '{task}' (choose from {', '.join(TASK_CLASSES)})")
        if cls_path != TASK_CLASSES[task]:
            found = next((k for k, v in TASK_CLASSES.items() if v == cls_path), cls_path)
            raise UserError(f"{spec}: model is for task '{found}', not task={task}")
    hparams = {**json.loads(meta["hparams"]), **overrides, "weights": str(path),
               "allow_random_init": False}
    model = import_class(cls_path)(**hparams)
    return model.eval()


def _main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sapiens_kit.hub",
        description="Push a fine-tuned checkpoint to the Hugging Face Hub with a model card.")
    parser.add_argument("ckpt", help="sapiens_kit Lightning checkpoint")
    parser.add_argument("repo_id", help="org/name on the Hub")
    parser.add_argument("--local-dir", help="write the files here instead of uploading")
    parser.add_argument("--private", action="store_true", help="create a private repository")
    parser.add_argument("--task", help="expected task key (seg, pose, depth, normal)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from sapiens_kit.utils.cli import report_errors

    print(report_errors(push_to_hub)(args.ckpt, args.repo_id, local_dir=args.local_dir,
                                     private=args.private or None, task=args.task))


if __name__ == "__main__":
    _main()


__all__ = ["from_pretrained", "model_file", "push_to_hub", "save_pretrained"]
