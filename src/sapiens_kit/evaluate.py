"""Score a checkpoint: ``python -m sapiens_kit.evaluate task=... ckpt=... data=...``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from sapiens_kit.utils.app import hydra_app
from sapiens_kit.utils.cli import load_task, requested_task
from sapiens_kit.utils.config import build_datamodule

log = logging.getLogger("sapiens_kit")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Validate ``cfg.ckpt`` on ``cfg.data``'s validation set; writes ``metrics.json``.

    The task (unless ``task=`` is given, then it is checked) and the input size come from the
    checkpoint: the data is resized to the size the model was trained at. Without ``data=`` on
    the command line, the data is the one the checkpoint's run recorded (its training data).
    The output folder must not hold results yet (``overwrite=true`` replaces its metrics.json).
    """
    from sapiens_kit.run_folder import claim_run_folder, use_recorded_data

    out = Path(cfg.paths.output_dir)
    # overwrite=true: metrics.json is replaced when the new one is written, nothing before.
    claim_run_folder(out, bool(cfg.get("overwrite")), clear=())
    model = load_task(cfg.ckpt, requested_task(cfg))
    use_recorded_data(cfg, cfg.ckpt)
    datamodule = build_datamodule(cfg, img_size=model.img_size)
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[])
    results = trainer.validate(model, datamodule=datamodule)
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    log.info("Metrics written to %s", out / "metrics.json")
    return metrics


@hydra_app("evaluate")
def main(cfg: DictConfig) -> None:
    """Hydra app wrapper around :func:`evaluate`."""
    evaluate(cfg)


if __name__ == "__main__":
    main()
