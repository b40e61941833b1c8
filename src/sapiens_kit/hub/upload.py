"""Write a shared-model folder, push it to the Hugging Face Hub, and load it back."""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sapiens_kit.errors import UserError
from sapiens_kit.hub.card import (
    CARD_FILE,
    CONFIG_FILE,
    MODEL_FILE,
    model_card,
    model_config,
    run_metrics,
)
from sapiens_kit.hub.format import load_task_file, save_task_file
from sapiens_kit.tasks.registry import load_task

log = logging.getLogger("sapiens_kit.hub")


def save_pretrained(task: Any, folder: str | Path, metrics: Mapping[str, float] | None = None,
                    repo_id: str | None = None) -> list[Path]:
    """Write ``model.safetensors``, ``config.json`` and ``README.md`` for ``task`` into ``folder``.

    Returns:
        The written paths.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hparams = save_task_file(task, folder / MODEL_FILE)
    config = model_config(task, hparams, metrics or {})
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


def model_file(spec: str | Path) -> Path:
    """Local path of a shared model: ``hf-hub:org/name[/file]``, a folder or a file.

    ``hf-hub:`` specs are looked up in the Hugging Face cache first and downloaded only when
    missing (never with ``HF_HUB_OFFLINE=1``).
    """
    from sapiens_kit.models import parse_weights, resolve_source

    parsed = parse_weights(spec if isinstance(spec, Path) else str(spec))
    if parsed is not None and parsed.kind == "file" and parsed.path is not None:
        path = parsed.path / MODEL_FILE if parsed.path.is_dir() else parsed.path
        if not path.is_file():
            raise UserError(f"{path}: model file does not exist")
    return resolve_source(parsed if parsed is not None else str(spec), repo_file=MODEL_FILE)


def from_pretrained(spec: str | Path, task: str | None = None, **overrides: Any) -> Any:
    """Rebuild a task saved by :func:`save_pretrained` / :func:`push_to_hub` (or ``export
    format=safetensors``), in eval mode.

    Args:
        spec: ``hf-hub:org/name`` (file ``model.safetensors``), ``hf-hub:org/name/file``, a
            folder holding ``model.safetensors``, or the file itself.
        task: Expected task key (``seg``, ``pose``, ...); another task's model is refused.
        **overrides: Constructor arguments to change (e.g. ``flip_test=False``).
    """
    return load_task_file(model_file(spec), task, source=spec, **overrides).eval()


def main() -> None:
    """``python -m sapiens_kit.hub CKPT ORG/NAME [--local-dir DIR] [--private] [--task KEY]``."""
    from sapiens_kit.tasks.registry import task_keys
    from sapiens_kit.utils.cli import report_errors

    parser = argparse.ArgumentParser(
        prog="python -m sapiens_kit.hub",
        description="Push a fine-tuned checkpoint to the Hugging Face Hub with a model card.")
    parser.add_argument("ckpt", help="sapiens_kit Lightning checkpoint")
    parser.add_argument("repo_id", help="org/name on the Hub")
    parser.add_argument("--local-dir", help="write the files here instead of uploading")
    parser.add_argument("--private", action="store_true", help="create a private repository")
    parser.add_argument("--task", help=f"expected task key ({', '.join(task_keys())})")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(report_errors(push_to_hub)(args.ckpt, args.repo_id, local_dir=args.local_dir,
                                     private=args.private or None, task=args.task))


__all__ = ["from_pretrained", "main", "model_file", "push_to_hub", "save_pretrained"]
