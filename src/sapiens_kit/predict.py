"""Batched inference: ``python -m sapiens_kit.predict task=... ckpt=...|weights=...
input=<image|folder|video>``.

Images go through the task's ``predict_dataset`` + ``trainer.predict`` + ``save_predictions``
(JSON keypoints, PNG index masks, ``.npy`` depth/normals, overlays). A video is decoded frame by
frame and streamed through the same steps: per-frame files in ``<stem>_frames/`` plus an
annotated ``<stem>_overlay.mp4``. A folder may hold images and videos; unreadable images in it
are skipped and listed in ``summary.json``.

Everything is written to a scratch folder beside ``output`` and moved into place only when the
run succeeds, so an error leaves nothing half-written; ``overwrite=true`` replaces a previous
result set as a whole (old and new files are never mixed).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sapiens_kit.errors import UserError
from sapiens_kit.utils.app import hydra_app
from sapiens_kit.utils.cli import load_task, requested_task
from sapiens_kit.utils.lazy import lazy_attr, lazy_module, lazy_sequence

if TYPE_CHECKING:
    import lightning as L
    from torch.utils.data import DataLoader

    from sapiens_kit.data.collate import collate
    from sapiens_kit.data.io import IMAGE_SUFFIXES
    from sapiens_kit.data.video import VIDEO_SUFFIXES, probe_video
    from sapiens_kit.inference.video import predict_video
    from sapiens_kit.tasks.registry import get_task_class, task_keys
else:  # imported when a job runs: --help and command-line errors answer without torch
    L = lazy_module("lightning")
    DataLoader = lazy_attr("torch.utils.data", "DataLoader")
    collate = lazy_attr("sapiens_kit.data.collate", "collate")
    IMAGE_SUFFIXES = lazy_sequence("sapiens_kit.data.io", "IMAGE_SUFFIXES")
    VIDEO_SUFFIXES = lazy_sequence("sapiens_kit.data.video", "VIDEO_SUFFIXES")
    predict_video = lazy_attr("sapiens_kit.inference.video", "predict_video")
    probe_video = lazy_attr("sapiens_kit.data.video", "probe_video")
    get_task_class = lazy_attr("sapiens_kit.tasks.registry", "get_task_class")
    task_keys = lazy_attr("sapiens_kit.tasks.registry", "task_keys")

log = logging.getLogger("sapiens_kit")


# ------------------------------------------------------------------------------ inputs
def unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read as an image (header check, cut short), else ``None``."""
    from sapiens_kit.data.io import image_problem

    return image_problem(path)


def find_inputs(path: Path) -> tuple[list[Path], list[Path], list[dict[str, str]]]:
    """``(images, videos, skipped)`` at ``path``: a file, or the files directly in a folder.

    A single unreadable image is an error; in a folder unreadable images are skipped (listed
    with the reason) so one bad file does not stop a large run.
    """
    if not path.exists():
        raise UserError(f"{path}: input does not exist")
    suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES
    if path.is_file():
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return [], [path], []
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise UserError(f"{path}: not an image or video file ({', '.join(suffixes)})")
        if (reason := unreadable(path)) is not None:
            raise UserError(f"{path}: unreadable image ({reason})")
        return [path], [], []
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise UserError(f"{path}: folder holds no images or videos ({', '.join(suffixes)})")
    videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
    images, skipped = [], []
    for p in files:
        if p.suffix.lower() in IMAGE_SUFFIXES:
            reason = unreadable(p)
            if reason is None:
                images.append(p)
            else:
                skipped.append({"path": str(p), "reason": reason})
    if skipped:
        log.warning("skipping %d unreadable image(s): %s%s", len(skipped),
                    ", ".join(Path(s["path"]).name for s in skipped[:5]),
                    " ..." if len(skipped) > 5 else "")
    if not images and not videos:
        raise UserError(f"{path}: no readable images or videos ({len(skipped)} unreadable)")
    return images, videos, skipped


def find_images(path: Path) -> list[Path]:
    """The readable image files at ``path`` (a file or the files directly inside a folder)."""
    return find_inputs(path)[0]


def check_output(output: Path, inputs: Path, overwrite: bool) -> None:
    """Refuse to write into the input folder or over earlier results (unless ``overwrite``).

    ``overwrite=true`` replaces a previous ``predict`` output as a whole, so it is only accepted
    for a folder that is one (it holds a ``summary.json``): anything else could be deleted.
    """
    in_dir = (inputs if inputs.is_dir() else inputs.parent).resolve()
    out = output.resolve()
    if out == in_dir or in_dir in out.parents:
        raise UserError(f"{output}: output must not be inside the input folder {in_dir}")
    if out.exists() and not out.is_dir():
        raise UserError(f"{output}: output exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise UserError(f"{output}: output folder is not empty (pass overwrite=true to replace "
                        "a previous predict output, or choose another output=)")
    if not _is_prediction_output(out):
        raise UserError(f"{output}: overwrite=true replaces a previous predict output as a "
                        "whole, but this folder has no summary.json of one; choose another "
                        "output= (or empty it yourself)")


def _is_prediction_output(folder: Path) -> bool:
    """Whether ``folder`` was written by ``predict`` (its ``summary.json`` names the task)."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and "task" in summary and "skipped" in summary


@contextmanager
def staged_output(output: Path) -> Iterator[Path]:
    """A scratch folder beside ``output`` that replaces ``output`` as a whole on success (old
    and new files are never mixed) and which is removed (with any parent folders it needed) on
    error, leaving ``output`` as it was."""
    output = output.resolve()
    created = [p for p in reversed(output.parents) if not p.exists()]
    output.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in reversed(created):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    if output.is_dir() and not any(output.iterdir()):
        output.rmdir()
    if not output.exists():
        stage.rename(output)
        return
    # Swap: the previous result set moves aside, the new one takes its name, the old one goes.
    old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
    old.rmdir()
    output.rename(old)
    stage.rename(output)
    shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------ the model
def _explicit(name: str) -> bool:
    """Whether ``name=...`` was given on the command line (not just composed from defaults)."""
    try:
        return any(o.split("=", 1)[0].lstrip("+~") == name
                   for o in HydraConfig.get().overrides.task)
    except ValueError:  # composed outside a Hydra app (tests, notebooks): trust the config
        return True


def task_from_weights(cfg: DictConfig) -> Any:
    """Build the task for ``weights=`` (no checkpoint).

    A sapiens_kit model file (``push_to_hub`` / ``export format=safetensors``, also as
    ``hf-hub:org/name``) rebuilds itself. Official weights need ``task=``; registered ones
    (``sapiens_1b.seg_goliath``) also set the backbone, input size and patch padding. Other
    files take the model settings from the config (``backbone=``, ``img_size=``, default
    1024x768). What a data module would tell the task (classes, keypoint set) comes from the
    task's ``arguments_for_weights`` hook, given the registered metadata and the ``data.*``
    options on the command line.
    """
    from hydra.utils import instantiate

    from sapiens_kit.hub import from_pretrained, model_file, read_task_metadata
    from sapiens_kit.models import get_pretrained_cfg, parse_weights

    weights, task = str(cfg.weights), requested_task(cfg)
    spec = parse_weights(weights)
    registered = spec is not None and spec.kind == "registered"
    shared = spec is not None and (spec.kind == "hf-hub" or (
        spec.path is not None and (spec.path.suffix == ".safetensors" or spec.path.is_dir())))
    if shared and read_task_metadata(model_file(weights)) is not None:
        return from_pretrained(weights, task)
    if task is None:
        raise UserError(f"weights={weights} is not a sapiens_kit model file: say which task it "
                        f"was trained for with task=<{'|'.join(task_keys())}>")
    model: dict[str, Any] = OmegaConf.to_container(cfg.model, resolve=True)  # type: ignore[assignment]
    model.update(weights=weights, allow_random_init=False)
    pre = get_pretrained_cfg(weights) if registered else None
    if pre is not None:
        if pre.task != task:
            raise UserError(f"weights={weights} are {pre.task} weights, not task={task}"
                            + (" (pretrain weights have no task head: fine-tune first)"
                               if pre.task == "pretrain" else ""))
        model.update(backbone=pre.arch, patch_padding=pre.patch_padding)
    if model.get("img_size") is None:  # img_size=null (the default): from the weights
        model["img_size"] = list(pre.input_size[1:]) if pre is not None else [1024, 768]
    given = {k: v for k, v in (cfg.get("data") or {}).items() if _explicit(f"data.{k}")}
    model.update(get_task_class(task).arguments_for_weights(pre, given))
    return instantiate(model).eval()


def build_task(cfg: DictConfig) -> Any:
    """The task to predict with: from ``ckpt=`` or from ``weights=`` (exactly one)."""
    if cfg.get("ckpt") and cfg.get("weights"):
        raise UserError("give either ckpt=<run.ckpt> or weights=<...>, not both")
    if cfg.get("ckpt"):
        return load_task(cfg.ckpt, requested_task(cfg))
    if cfg.get("weights"):
        return task_from_weights(cfg)
    raise UserError("nothing to predict with: give ckpt=<run/checkpoints/best.ckpt> or "
                    "weights=<hf-hub:org/name | arch.tag | file>")


# ------------------------------------------------------------------------------ the app
def _options(cfg: DictConfig) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if cfg.get("bboxes"):
        options["bboxes"] = cfg.bboxes
    if cfg.get("mask_dir"):
        options["mask_dir"] = cfg.mask_dir
    return options


def predict(cfg: DictConfig, output: Path) -> list[Path]:
    """Run the task over the input images and videos and write its result files.

    Returns:
        The files written under ``output`` (summary included).
    """
    inputs = Path(cfg.input).expanduser()
    images, videos, skipped = find_inputs(inputs)
    for video in videos:  # fail on an undecodable video before any model is loaded
        probe_video(video)
    if videos and cfg.get("bboxes"):
        raise UserError("bboxes= is for image inputs; video frames use the whole frame as box")
    check_output(output, inputs, cfg.overwrite)
    task = build_task(cfg)
    task.set_draw_options(**(cfg.get("draw") or {}))
    summary: dict[str, Any] = {"task": type(task).__name__, "images": len(images),
                               "skipped": skipped, "videos": []}
    with staged_output(output) as stage:
        if images:
            dataset = task.predict_dataset(images, **_options(cfg))
            loader = DataLoader(dataset, batch_size=cfg.batch_size,
                                num_workers=cfg.num_workers, collate_fn=collate)
            trainer = L.Trainer(accelerator=cfg.accelerator, devices=1, logger=False)
            batches = trainer.predict(task, dataloaders=loader)
            task.save_predictions(batches, stage)
        for video in videos:
            summary["videos"].append(predict_video(task, video, stage, cfg))
        (stage / "summary.json").write_text(json.dumps(summary, indent=2))
    written = sorted(p for p in output.rglob("*") if p.is_file())
    log.info("Wrote %d files for %d images and %d videos to %s%s", len(written), len(images),
             len(videos), output, f" ({len(skipped)} unreadable images skipped)" if skipped
             else "")
    return written


@hydra_app("predict")
def main(cfg: DictConfig) -> None:
    """Hydra app wrapper around :func:`predict`."""
    output = Path(cfg.output or Path(HydraConfig.get().runtime.output_dir) / "predictions")
    predict(cfg, output)


if __name__ == "__main__":
    main()
