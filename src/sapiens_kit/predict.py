"""Batched inference: ``python -m sapiens_kit.predict task=... ckpt=... input=<image|folder>``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from sapiens_kit.data.collate import collate
from sapiens_kit.data.io import IMAGE_SUFFIXES
from sapiens_kit.utils.cli import UserError, load_task, report_errors, requested_task
from sapiens_kit.utils.config import CONFIG_DIR

log = logging.getLogger("sapiens_kit")


def find_images(path: Path) -> list[Path]:
    """The image files at ``path`` (a file or the files directly inside a folder)."""
    if not path.exists():
        raise UserError(f"{path}: input does not exist")
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise UserError(f"{path}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
        return [path]
    images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise UserError(f"{path}: folder holds no images")
    return images


def check_output(output: Path, inputs: Path, overwrite: bool) -> None:
    """Refuse to write into the input folder or over earlier results (unless ``overwrite``)."""
    in_dir = (inputs if inputs.is_dir() else inputs.parent).resolve()
    out = output.resolve()
    if out == in_dir or in_dir in out.parents:
        raise UserError(f"{output}: output must not be inside the input folder {in_dir}")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{output}: output folder is not empty (pass overwrite=true)")


def predict(cfg: DictConfig, output: Path) -> list[Path]:
    """Run the checkpoint's task over the input images and write its result files."""
    inputs = Path(cfg.input).expanduser()
    images = find_images(inputs)
    check_output(output, inputs, cfg.overwrite)
    task = load_task(cfg.ckpt, requested_task(cfg))
    options: dict[str, Any] = {"bboxes": cfg.bboxes} if cfg.bboxes else {}
    dataset = task.predict_dataset(images, **options)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                        collate_fn=collate)
    trainer = L.Trainer(accelerator=cfg.accelerator, devices=1, logger=False)
    batches = trainer.predict(task, dataloaders=loader)
    written = task.save_predictions(batches, output)
    log.info("Wrote %d files for %d images to %s", len(written), len(images), output)
    return written


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
@report_errors
def main(cfg: DictConfig) -> None:
    """Hydra app wrapper around :func:`predict`."""
    output = Path(cfg.output or Path(HydraConfig.get().runtime.output_dir) / "predictions")
    predict(cfg, output)


if __name__ == "__main__":
    main()
