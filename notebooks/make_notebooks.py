"""Writes the tutorial notebooks from plain cell lists (outputs stripped), so they diff cleanly.

    python notebooks/make_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def write(name: str, cells: list[tuple[str, str]]) -> None:
    nb = new_notebook(cells=[new_markdown_cell(src) if kind == "md" else new_code_cell(src)
                             for kind, src in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, HERE / f"{name}.ipynb")


QUICKSTART_SEG = [
    ("md", """# 01 · Quickstart: body-part segmentation with Sapiens

This notebook fine-tunes a Sapiens backbone for segmentation on the small demo set that ships with
`sapiens_kit` (4 real COCO photos with person masks), looks at the data, plots the training curve
and runs the fine-tuned model on a photo without Hydra.

It runs on a CPU in a couple of minutes because the knobs below pick the tiny random-weight
`sapiens_test` backbone. For real work set `BACKBONE = "sapiens_0_3b"` (or `sapiens_1b`, ...),
`WEIGHTS = "sapiens_0_3b.pretrain_humans300m"` (downloaded from the Hugging Face hub, or a local
`*_clean.pth` path), `IMG_SIZE = (1024, 768)` and point `DATA_ROOT` at your own
`images/` + `masks/` folder."""),
    ("code", """# Knobs: the only cell to edit.
BACKBONE = "sapiens_test"      # e.g. "sapiens_0_3b" for real work
WEIGHTS = None                 # e.g. "sapiens_0_3b.pretrain_humans300m" or "/ckpt/..._clean.pth"
IMG_SIZE = (128, 96)           # (H, W); Sapiens is trained at (1024, 768)
MAX_EPOCHS = 3
DATA_ROOT = None               # None = the bundled demo set"""),
    ("code", """import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import sapiens_kit
from sapiens_kit.data import MaskFolderDataModule
from sapiens_kit.utils.config import asset_path
from sapiens_kit.visualize import overlay_mask

root = DATA_ROOT or asset_path("demo_seg")
print("backbones:", sapiens_kit.list_backbones())
print("data:", root)"""),
    ("md", "## The data\nIndex masks hold one class id per pixel; `classes.json` names them."),
    ("code", """dm = MaskFolderDataModule(root, img_size=IMG_SIZE, num_workers=0)
dm.setup()
print(dm.classes.names, len(dm.train_dataset), "training images")
fig, axes = plt.subplots(1, 4, figsize=(16, 4))
for ax, (img_path, mask_path) in zip(axes, dm.val_dataset.samples):
    from sapiens_kit.data.io import read_index_mask, read_rgb
    ax.imshow(overlay_mask(read_rgb(img_path), read_index_mask(mask_path), dm.classes.palette))
    ax.set_title(Path(img_path).name); ax.axis("off")
plt.show()"""),
    ("md", """## Fine-tune
The same configuration the command line uses (`python -m sapiens_kit.train task=seg ...`),
composed here with Hydra's API so every option is an override string."""),
    ("code", """from hydra import compose, initialize_config_dir
from sapiens_kit.train import train
from sapiens_kit.utils.config import CONFIG_DIR

out_dir = Path(tempfile.mkdtemp()) / "run"
overrides = [
    "task=seg", f"backbone={BACKBONE}", "data=mask_folder", f"data.root={root}",
    "data.num_workers=0", f"img_size=[{IMG_SIZE[0]},{IMG_SIZE[1]}]",
    f"trainer.max_epochs={MAX_EPOCHS}", "trainer.log_every_n_steps=1", "num_overlays=4",
    f"paths.output_dir={out_dir}",
]
if WEIGHTS:
    overrides.append(f"model.weights={WEIGHTS}")
with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
    cfg = compose(config_name="train", overrides=overrides)
metrics, objects = train(cfg)
{k: round(v, 3) for k, v in metrics.items() if k.startswith("val/")}"""),
    ("md", "## Training curve\nThe CSV logger writes every logged value per step."),
    ("code", """import pandas as pd

log = pd.read_csv(next(out_dir.glob("csv/*/metrics.csv")))
fig, ax = plt.subplots(1, 2, figsize=(10, 3))
log.dropna(subset=["train/loss"]).plot(x="step", y="train/loss", ax=ax[0])
log.dropna(subset=["val/mIoU"]).plot(x="step", y="val/mIoU", ax=ax[1], marker="o")
plt.show()"""),
    ("md", "## Predictions written by the run"),
    ("code", """from PIL import Image

overlays = sorted((out_dir / "predictions").glob("*_overlay.jpg"))
fig, axes = plt.subplots(1, len(overlays), figsize=(4 * len(overlays), 4))
for ax, path in zip(np.atleast_1d(axes), overlays):
    ax.imshow(Image.open(path)); ax.axis("off")
plt.show()"""),
    ("md", """## Use the checkpoint without Hydra
Tasks are plain LightningModules: `load_from_checkpoint` rebuilds the model from the arguments
stored in the checkpoint."""),
    ("code", """import torch
from sapiens_kit.data.datasets.image_folder import ImageListDataset
from sapiens_kit.tasks import SegmentationTask

task = SegmentationTask.load_from_checkpoint(out_dir / "checkpoints" / "best.ckpt", weights=None)
task.eval()
sample = ImageListDataset([Path(dm.val_dataset.samples[0][0])], task.img_size)[0]
with torch.no_grad():
    pred = task.predict_step({"image": sample["image"][None], "meta": [sample["meta"]]}, 0)[0]
print("label map", tuple(pred["label"].shape), "classes present:", pred["label"].unique().tolist())
assert pred["label"].shape == sample["meta"]["orig_size"]"""),
]

if __name__ == "__main__":
    write("01_quickstart_segmentation", QUICKSTART_SEG)
