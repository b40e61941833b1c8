"""Training entry point: ``python -m sapiens_kit.train task=seg [overrides...]``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sapiens_kit.utils.config import CONFIG_DIR, instantiate_dict

log = logging.getLogger("sapiens_kit")


def build(cfg: DictConfig) -> tuple[Any, Any, L.Trainer]:
    """Instantiate (datamodule, task, trainer) from a composed config.

    The data module is built first because it decides what the task must predict (number of
    classes, keypoint set), which it reports through ``task_kwargs()``.
    """
    datamodule = instantiate(cfg.data, _convert_="all")
    model = instantiate(cfg.model, _convert_="all", **datamodule.task_kwargs())
    callbacks = instantiate_dict(cfg.get("callbacks"))
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
    L.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    datamodule, model, trainer = build(cfg)
    if trainer.is_global_zero:
        log.info("Outputs: %s", out_dir.resolve())
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {
        k: float(v) for k, v in trainer.callback_metrics.items()
        if v.numel() == 1 and not k.startswith("lr-")
    }
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    if cfg.get("test_after_fit") and not trainer.fast_dev_run:
        results = trainer.validate(model, datamodule=datamodule, ckpt_path=best or "last")
        metrics.update({k: float(v) for k, v in (results[0] if results else {}).items()})
    if trainer.is_global_zero:
        if cfg.get("num_overlays") and not trainer.fast_dev_run:
            written = model.save_predictions(
                _predictor(trainer).predict(model, datamodule=datamodule, ckpt_path=best),
                out_dir / "predictions", limit=cfg.num_overlays,
            )
            log.info("Wrote %d prediction files to %s", len(written), out_dir / "predictions")
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        log.info("Metrics: %s", json.dumps(metrics, sort_keys=True))
        if best:
            log.info("Best checkpoint: %s", best)
        log.info("Outputs: %s", out_dir.resolve())
    return metrics, {"datamodule": datamodule, "model": model, "trainer": trainer}


def _predictor(trainer: L.Trainer) -> L.Trainer:
    """The trainer for rank-0-only overlays: a single-device one after multi-process training
    (the fitted strategy's collectives would wait for the other ranks forever)."""
    if trainer.world_size == 1:
        return trainer
    return L.Trainer(accelerator=trainer.accelerator, devices=1, precision=trainer.precision,
                     logger=False, enable_checkpointing=False, enable_progress_bar=False)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> None:
    """Hydra app wrapper around :func:`train`."""
    if cfg.get("print_config"):
        print(OmegaConf.to_yaml(cfg, resolve=True))
    train(cfg)


if __name__ == "__main__":
    main()
