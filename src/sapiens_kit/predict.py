"""Batched inference: ``python -m sapiens_kit.predict task=... ckpt=...|weights=...
input=<image|folder|video>``.

Images (found recursively in a folder and streamed) go through the task's ``predict_dataset``
+ ``trainer.predict`` + ``save_predictions``; tasks that need person boxes (pose) get them from
the ``detector`` first (see :mod:`sapiens_kit.inference.images`). A video is decoded frame by
frame and streamed through the same steps: per-frame files in ``<stem>_frames/`` plus an
annotated ``<stem>_overlay.mp4``. Unreadable images in a folder are skipped and listed in
``summary.json``.

Each input's files are written atomically as soon as it is done and mirror the input tree;
``resume=true`` continues an interrupted run; ``overwrite=true`` replaces a previous result set
as a whole (old and new files are never mixed). See :mod:`sapiens_kit.inference.outputs`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sapiens_kit.errors import UserError
from sapiens_kit.utils.app import hydra_app
from sapiens_kit.utils.cli import load_task, requested_task
from sapiens_kit.utils.lazy import lazy_attr, lazy_module

if TYPE_CHECKING:
    import lightning as L
    from torch.utils.data import DataLoader

    from sapiens_kit.data.collate import collate
    from sapiens_kit.data.video import probe_video
    from sapiens_kit.inference.video import predict_video
    from sapiens_kit.tasks.registry import get_task_class, task_keys
else:  # imported when a job runs: --help and command-line errors answer without torch
    L = lazy_module("lightning")
    DataLoader = lazy_attr("torch.utils.data", "DataLoader")
    collate = lazy_attr("sapiens_kit.data.collate", "collate")
    predict_video = lazy_attr("sapiens_kit.inference.video", "predict_video")
    probe_video = lazy_attr("sapiens_kit.data.video", "probe_video")
    get_task_class = lazy_attr("sapiens_kit.tasks.registry", "get_task_class")
    task_keys = lazy_attr("sapiens_kit.tasks.registry", "task_keys")

log = logging.getLogger("sapiens_kit")


# ------------------------------------------------------------------------------ output
def check_output(output: Path, inputs: Path, overwrite: bool, resume: bool = False) -> None:
    """Refuse to write into the input folder or over earlier results.

    A non-empty ``output`` is accepted only when it is a ``predict`` output (a finished one has
    a ``summary.json``, an interrupted one its done markers): ``resume=true`` continues it,
    ``overwrite=true`` replaces it as a whole. Anything else could be deleted, so it is refused.
    """
    from sapiens_kit.inference.outputs import is_prediction_output

    in_dir = (inputs if inputs.is_dir() else inputs.parent).resolve()
    out = output.resolve()
    if out == in_dir or in_dir in out.parents:
        raise UserError(f"{output}: output must not be inside the input folder {in_dir}")
    if out.exists() and not out.is_dir():
        raise UserError(f"{output}: output exists and is not a folder")
    if overwrite and resume:
        raise UserError("give overwrite=true (start again) or resume=true (continue), not both")
    if not out.exists() or not any(out.iterdir()):
        return
    if not (overwrite or resume):
        raise UserError(f"{output}: output folder is not empty (pass resume=true to continue "
                        "an interrupted predict, overwrite=true to replace a previous predict "
                        "output, or choose another output=)")
    if not is_prediction_output(out):
        what = "replaces a previous predict output as a whole" if overwrite else (
            "continues a previous predict output")
        raise UserError(f"{output}: {'overwrite' if overwrite else 'resume'}=true {what}, but "
                        "this folder has no summary.json of one; choose another output= (or "
                        "empty it yourself)")


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

    Each input's files are written (atomically) as soon as it is done, beside where the input
    sits in the input tree; ``resume=true`` skips the inputs whose files are complete. See
    :mod:`sapiens_kit.inference.outputs`.

    Returns:
        The files under ``output`` (summary included, the hidden resume state left out).
    """
    import time

    if not Path(cfg.input).expanduser().exists():  # answered before torch is imported
        raise UserError(f"{cfg.input}: input does not exist")
    from sapiens_kit.inference.inputs import (
        annotation_ids,
        is_video,
        relative,
        scan_inputs,
        walk_inputs,
    )
    from sapiens_kit.inference.outputs import prediction_output

    started = time.monotonic()
    inputs = Path(cfg.input).expanduser()
    scan = scan_inputs(inputs)
    for video in scan.videos:  # fail on an undecodable video before any model is loaded
        probe_video(video)
    if scan.videos and cfg.get("bboxes"):
        raise UserError("bboxes= is for image inputs; video frames use the whole frame as box")
    resume = bool(cfg.get("resume"))
    check_output(output, inputs, bool(cfg.overwrite), resume)
    task = build_task(cfg)
    task.set_draw_options(**(cfg.get("draw") or {}))
    from sapiens_kit.inference.images import compile_task, make_detector, predict_images

    if cfg.get("compile"):
        compile_task(task)

    detector = make_detector(task, cfg)
    if detector is not None and hasattr(detector, "check_inputs"):  # bboxes= matching no input
        detector.check_inputs([str(p) for p in walk_inputs(inputs) if not is_video(p)])
    with prediction_output(output, type(task).__name__, overwrite=bool(cfg.overwrite),
                           source=str(inputs.resolve())) as out:
        if scan.images:
            predict_images(task, inputs, out, cfg, _options(cfg), detector,
                           annotation_ids(cfg.get("bboxes")), _trainer_factory(cfg))
        for video in scan.videos:
            rel = relative(video, inputs)
            if out.is_complete(rel):
                out.resumed += 1
                continue
            with out.scratch() as scratch:
                entry = predict_video(task, video, scratch, cfg, detector=detector)
                results = entry.pop("results", None)
                out.commit(rel, scratch, {"video": entry} if results is None else {
                    "video": entry, "results": results})
        written = out.finish(((p, relative(p, inputs)) for p in walk_inputs(inputs)),
                             time.monotonic() - started, _unreadable)
    summary = json.loads((output / "summary.json").read_text())
    log.info("Wrote %d files for %d images and %d videos to %s (%d done earlier, %d unreadable "
             "skipped, %d failed)", len(written), summary["images"], len(summary["videos"]),
             output, summary["run"]["resumed"], len(summary["skipped"]), len(summary["failed"]))
    return written


def _unreadable(path: Path) -> str | None:
    from sapiens_kit.data.io import image_problem

    return image_problem(path)


def _trainer_factory(cfg: DictConfig) -> Any:
    """Makes the Lightning Trainer that runs the model (callbacks given by the caller)."""
    from sapiens_kit.inference.images import trainer_options

    options = trainer_options(cfg)

    def make(callbacks: list[Any]) -> Any:
        return L.Trainer(callbacks=callbacks, **options)
    return make


@hydra_app("predict")
def main(cfg: DictConfig) -> None:
    """Hydra app wrapper around :func:`predict`."""
    output = Path(cfg.output or Path(HydraConfig.get().runtime.output_dir) / "predictions")
    predict(cfg, output)


if __name__ == "__main__":
    main()
