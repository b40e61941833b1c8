"""Training entry point: ``python -m sapiens_kit.train task=seg [overrides...]``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sapiens_kit.utils.app import hydra_app
from sapiens_kit.utils.cli import UserError
from sapiens_kit.utils.config import build_datamodule, instantiate_dict
from sapiens_kit.utils.lazy import lazy_module

if TYPE_CHECKING:
    import lightning as L
else:  # imported when a job runs: --help and command-line errors answer without it
    L = lazy_module("lightning")

log = logging.getLogger("sapiens_kit")


def check_demo(cfg: DictConfig) -> None:
    """Refuse to run the demo's CPU settings (``demo/demo_*.yaml``) on other data.

    They are selected with the demo data preset (``task=seg`` alone), so ``data.root=/my/parts``
    on that preset would otherwise train a small head at 256x192 from random weights on real data.

    Raises:
        UserError: If the data is not the one the active demo settings were made for.
    """
    demo = cfg.get("demo")
    if not demo:
        return
    data = cfg.data
    if data.get("_target_") == demo.data_target and data.get("root") == demo.data_root:
        return
    given = f"data.root={data.get('root')}" if data.get("root") else f"data={data.get('_target_')}"
    raise UserError(
        f"{given} is not the demo's data, but the demo's CPU settings (small head, img_size="
        f"{list(cfg.model.img_size)}, {cfg.trainer.max_epochs} epochs, random init allowed) "
        f"are on: add {demo.real_data} to train on your data with the real recipe (or "
        "experiment=<name> for an official one, or demo=none to keep this data preset)"
    )


def build(cfg: DictConfig) -> tuple[Any, Any, L.Trainer]:
    """Instantiate (datamodule, task, trainer) from a composed config.

    The data module is built first because it decides what the task must predict (number of
    classes, keypoint set), which it reports through ``task_kwargs()``; it resizes to the task's
    ``img_size``.
    """
    from sapiens_kit.callbacks.checkpoints import RecordData

    check_demo(cfg)
    datamodule = build_datamodule(cfg)
    model = instantiate(cfg.model, _convert_="all", **datamodule.task_kwargs())
    callbacks = instantiate_dict(cfg.get("callbacks"))
    callbacks.append(RecordData(cfg.get("data")))  # evaluate without data= reads it back
    loggers = instantiate_dict(cfg.get("logger"))
    if not loggers:
        callbacks = [c for c in callbacks if type(c).__name__ != "LearningRateMonitor"]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return datamodule, model, trainer


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit, then score the best checkpoint and write metrics and prediction overlays.

    Returns:
        ``(metrics, objects)``: final metrics and the datamodule/model/trainer used.
    """
    from sapiens_kit.run_folder import claim_run_folder, remove_results

    check_demo(cfg)
    out_dir = Path(cfg.paths.output_dir)
    # Before anything is written: refuses a folder holding earlier results (see run_folder);
    # with overwrite=true they are removed once the run is built, before it writes any.
    earlier = claim_run_folder(out_dir, bool(cfg.get("overwrite")), cfg.get("ckpt_path"))
    L.seed_everything(cfg.seed, workers=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    datamodule, model, trainer = build(cfg)
    remove_results(earlier)
    if trainer.is_global_zero:
        log.info("Outputs: %s", out_dir.resolve())
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {
        k: float(v) for k, v in trainer.callback_metrics.items()
        if v.numel() == 1 and not k.startswith("lr-")
    }
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    if cfg.get("test_after_fit") and not trainer.fast_dev_run:
        results = trainer.validate(_unsharded(trainer, model), datamodule=datamodule,
                                   ckpt_path=best or "last")
        metrics.update({k: float(v) for k, v in (results[0] if results else {}).items()})
    if trainer.is_global_zero:
        if cfg.get("num_overlays") and not trainer.fast_dev_run:
            _write_overlays(trainer, model, datamodule, best, out_dir / "predictions",
                            cfg.num_overlays)
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        log.info("Metrics: %s", json.dumps(metrics, sort_keys=True))
        if best:
            log.info("Best checkpoint: %s", best)
        log.info("Outputs: %s", out_dir.resolve())
    return metrics, {"datamodule": datamodule, "model": model, "trainer": trainer}


def _fresh_copy(model: Any) -> Any:
    """An unwrapped model built from the same arguments, without fetching pretrained weights
    (the checkpoint it is about to receive holds them all)."""
    return type(model)(**{**model.hparams, "weights": None})


def _unsharded(trainer: L.Trainer, model: Any) -> Any:
    """The model to evaluate after ``fit``: a fresh copy under FSDP, which has flattened and
    sharded the fitted one in place and cannot wrap it a second time."""
    from lightning.pytorch.strategies import FSDPStrategy

    return _fresh_copy(model) if isinstance(trainer.strategy, FSDPStrategy) else model


def _write_overlays(trainer: L.Trainer, model: Any, datamodule: Any, best: str | None,
                    out_dir: Path, limit: int) -> None:
    """Rank 0's prediction overlays from the best checkpoint.

    After multi-process training they come from a fresh single-device trainer and model: the
    fitted strategy's collectives would wait for the other ranks forever, and FSDP has sharded
    the fitted model's blocks in place.
    """
    if trainer.world_size == 1:
        batches = trainer.predict(model, datamodule=datamodule, ckpt_path=best)
    else:
        ckpt = best or getattr(trainer.checkpoint_callback, "last_model_path", "")
        if not ckpt or not Path(ckpt).is_file():
            log.warning("No single-file checkpoint to draw prediction overlays from after "
                        "multi-process training; skipping them.")
            return
        single = L.Trainer(accelerator=trainer.accelerator, devices=1,
                           precision=trainer.precision, logger=False,
                           enable_checkpointing=False, enable_progress_bar=False)
        batches = single.predict(_fresh_copy(model), datamodule=datamodule, ckpt_path=ckpt)
    written = model.save_predictions(batches, out_dir, limit=limit)
    log.info("Wrote %d prediction files to %s", len(written), out_dir)


@hydra_app("train")
def main(cfg: DictConfig) -> None:
    """Hydra app wrapper around :func:`train`."""
    if cfg.get("print_config"):
        print(OmegaConf.to_yaml(cfg, resolve=True))
    train(cfg)


if __name__ == "__main__":
    main()
