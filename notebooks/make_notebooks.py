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
    for i, cell in enumerate(nb.cells):  # fixed ids: regenerating gives no spurious diffs
        cell.id = f"{name[:2]}-{i:02d}"
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


# Shared by the notebooks below: compose a config exactly as the command line would.
COMPOSE = '''from hydra import compose, initialize_config_dir
from sapiens_kit.utils.config import CONFIG_DIR


def config(name, *overrides):
    """The config `python -m sapiens_kit.<name> <overrides>` runs with."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))'''

CURVES = '''import pandas as pd


def curves(run_dir, *keys):
    """Plot logged values against the step, from the CSV logger's metrics.csv."""
    log = pd.read_csv(next(Path(run_dir).glob("csv/*/metrics.csv")))
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3))
    for ax, key in zip(np.atleast_1d(axes), keys):
        rows = log.dropna(subset=[key])
        ax.plot(rows["step"], rows[key], marker="o" if key.startswith("val/") else None)
        ax.set_title(key); ax.set_xlabel("step")
    plt.show()'''

FINETUNE_POSE = [
    ("md", """# 02 · Fine-tune 2D pose on COCO-WholeBody (133 keypoints)

Top-down pose: each person box is cropped to the model input, the model predicts one heatmap per
keypoint (UDP heatmaps, as in the official Sapiens recipe), and the flip-tested peaks are mapped
back to the photo and scored with COCO keypoint AP.

This notebook fine-tunes on the 4 COCO photos (12 labelled people) that ship with `sapiens_kit`,
draws the labels and the training crops, plots the training curves and runs the checkpoint on a
photo without Hydra. The knobs pick the tiny random `sapiens_test` backbone so it runs on a CPU in
a couple of minutes; such a model's keypoints are noise: it shows the plumbing, not accuracy.

**Real work**: `BACKBONE = "sapiens_1b"`, `WEIGHTS = "sapiens_1b.pretrain_humans300m"` (from the
Hugging Face hub, or a local `*_clean.pth`), `IMG_SIZE = (1024, 768)` and `DATA_ROOT` a COCO folder
with `annotations/coco_wholebody_{train,val}_v1.0.json`, `train2017/` and `val2017/`. The official
recipe is one command: `python -m sapiens_kit.train experiment=pose_coco_wholebody_1b
data.root=/data/coco` (COCO-17: `experiment=pose_coco_1b`; Goliath-308: `pose_goliath_1b`)."""),
    ("code", """# Knobs: the only cell to edit.
BACKBONE = "sapiens_test"       # e.g. "sapiens_1b" for real work
WEIGHTS = None                  # e.g. "sapiens_1b.pretrain_humans300m" or "/ckpt/..._clean.pth"
IMG_SIZE = (128, 96)            # (H, W); Sapiens pose is trained at (1024, 768)
MAX_EPOCHS = 4
KEYPOINTS = "coco_wholebody133" # or "coco17", "goliath308", or your own set file
DATA_ROOT = None                # None = the bundled demo; else a COCO root (see above)"""),
    ("code", """import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from sapiens_kit.data import CocoKeypointDataModule
from sapiens_kit.data.io import read_rgb
from sapiens_kit.data.keypoints import load_keypoint_set
from sapiens_kit.utils.config import asset_path
from sapiens_kit.visualize import draw_pose, draw_prediction

root = Path(DATA_ROOT or asset_path("demo_pose"))
kset = load_keypoint_set(KEYPOINTS)
print(kset.name, kset.num_keypoints, "keypoints, e.g.", list(kset.names[:5]), "...")
print("left/right pairs swapped by flips:", len(kset.flip_pairs), "| skeleton links:",
      len(kset.skeleton))"""),
    ("code", COMPOSE),
    ("code", CURVES),
    ("md", """## The labels
Each annotation holds a box and `x, y, visibility` per keypoint. The data module checks the files
(fields, lengths, boxes) before training and keeps the ground truth for the AP metric."""),
    ("code", """ann, img_dir = (("annotations.json", "images") if DATA_ROOT is None else
                ("annotations/coco_wholebody_val_v1.0.json", "val2017"))
dm = CocoKeypointDataModule(str(root), ann, ann, img_dir=img_dir, keypoints=KEYPOINTS,
                            img_size=IMG_SIZE, num_workers=0)
dm.setup()
gt = dm.coco_ground_truth()
images = {i["id"]: i["file_name"] for i in gt["images"]}
fig, axes = plt.subplots(1, 4, figsize=(16, 4))
for ax, (image_id, name) in zip(axes, list(images.items())[:4]):
    photo = read_rgb(root / img_dir / name)
    for a in gt["annotations"]:
        if a["image_id"] == image_id:
            kps = np.asarray(a["keypoints"]).reshape(-1, 3)
            photo = draw_pose(photo, kps[:, :2], (kps[:, 2] > 0).astype(float), kset, 0.5)
    ax.imshow(photo); ax.set_title(name); ax.axis("off")
plt.show()"""),
    ("md", """What the model trains on: person crops at the model size after the official
augmentations (random scale, rotation, flip with left/right swap, half-body crops, colour
jitter)."""),
    ("code", """fig, axes = plt.subplots(1, 6, figsize=(15, 3.5))
for ax, i in zip(axes, range(6)):
    s = dm.train_dataset[i % len(dm.train_dataset)]
    crop = s["image"].permute(1, 2, 0).numpy().copy()
    seen = s["keypoint_weights"].numpy().reshape(-1) > 0
    ax.imshow(draw_pose(crop, s["keypoints"].numpy(), seen.astype(float), kset, 0.5, radius=1))
    ax.axis("off")
plt.show()"""),
    ("md", """## Fine-tune
The configuration `python -m sapiens_kit.train task=pose ...` runs, composed with Hydra's API so
every option is an override string. `num_overlays=4` writes prediction overlays at the end."""),
    ("code", """from sapiens_kit.train import train

out_dir = Path(tempfile.mkdtemp()) / "pose_run"
overrides = ["task=pose", f"backbone={BACKBONE}", f"img_size=[{IMG_SIZE[0]},{IMG_SIZE[1]}]",
             f"data.keypoints={KEYPOINTS}", f"trainer.max_epochs={MAX_EPOCHS}",
             "trainer.log_every_n_steps=1", "model.warmup_steps=2", "num_overlays=4",
             f"paths.output_dir={out_dir}"]
if DATA_ROOT:
    overrides += ["data=coco_wholebody", f"data.root={DATA_ROOT}", "data.num_workers=4"]
if WEIGHTS:
    overrides.append(f"model.weights={WEIGHTS}")
metrics, objects = train(config("train", *overrides))
{k: round(v, 3) for k, v in metrics.items() if k in ("val/AP", "val/AR", "val/loss")}"""),
    ("md", "## Training curves\nThe CSV logger writes every logged value per step."),
    ("code", """curves(out_dir, "train/loss", "val/loss", "val/AP")"""),
    ("md", """## Predictions written by the run
`predictions/` holds `<photo>_keypoints.json` (per person: box, score and `[x, y, score]` per
keypoint, with the keypoint names) and `<photo>_overlay.jpg`; for numeric COCO file names also
`results.json` in the COCO results format."""),
    ("code", """import json
from PIL import Image

record = json.loads(next((out_dir / "predictions").glob("*_keypoints.json")).read_text())
first = record["instances"][0]
print({k: record[k] for k in ("image", "keypoint_set", "boxes")}, "|", len(record["instances"]),
      "people; first keypoint:", record["keypoint_names"][0], first["keypoints"][0])
overlays = sorted((out_dir / "predictions").glob("*_overlay.jpg"))
fig, axes = plt.subplots(1, len(overlays), figsize=(4 * len(overlays), 4))
for ax, path in zip(np.atleast_1d(axes), overlays):
    ax.imshow(Image.open(path)); ax.axis("off")
plt.show()"""),
    ("md", """## The checkpoint without Hydra
Tasks are plain LightningModules. `predict_dataset` makes top-down crops for image files from a box
file (a COCO detection results list, a COCO annotation file, or `{file name: [[x, y, w, h], ...]}`)
or, without boxes, the whole photo as one person; `visualize.draw_prediction` draws the people."""),
    ("code", """import torch
from sapiens_kit.data.collate import collate
from sapiens_kit.tasks import PoseTask

task = PoseTask.load_from_checkpoint(out_dir / "checkpoints" / "best.ckpt", weights=None).eval()
busiest = max(images, key=lambda i: sum(a["image_id"] == i for a in gt["annotations"]))
photo = root / img_dir / images[busiest]
crops = task.predict_dataset([photo], bboxes=str(root / ann))
with torch.no_grad():
    people = task.predict_step(collate([crops[i] for i in range(len(crops))]), 0)
print(len(people), "people;", people[0]["keypoints"].shape, "keypoints in photo pixels")
# keypoint_threshold=0 draws every point: the demo model's scores are far below the usual 0.3
# and its points are noise; fine-tuned real weights draw real skeletons.
picture = draw_prediction(read_rgb(photo), people, task, keypoint_threshold=0.0)
plt.figure(figsize=(8, 6)); plt.imshow(picture); plt.axis("off"); plt.show()"""),
    ("md", """## Next
- From the command line: `python -m sapiens_kit.predict task=pose
  ckpt=<run>/checkpoints/best.ckpt input=<photo, folder or video> bboxes=<detections.json>`.
- Your own keypoints: a small YAML with `names`, `flip_pairs`, `sigmas` and `skeleton` as
  `data.keypoints=my_set.yaml` (notebook 04).
- Skeletons in W&B while training: `logger=wandb callbacks=wandb_media`."""),
]

DEPTH_NORMALS = [
    ("md", """# 03 · Depth and surface normals

Two dense regression tasks on one kind of data: a photo, a per-pixel target (a depth, or a unit
normal vector) and an optional foreground mask. This notebook generates a small synthetic set with
exact labels (stick figures of spheres and capsules, ray-cast, so depth and normals are analytic),
fine-tunes a depth model and a normal model, plots their curves and draws predictions next to the
ground truth.

- **Depth** is *relative* by default, as in the official Sapiens models: per image the foreground
  depth is normalised to [0, 1] and trained with a scale-invariant log loss; the metrics align each
  prediction to the ground truth (scale and shift) first. `model.depth_target=metric` trains on the
  depth values themselves.
- **Normals** use the kit's camera axes: X right, Y up, Z towards the camera. Pictures show
  `(n + 1) / 2` as RGB, so a surface facing the camera is light blue-violet. Data stored with
  OpenCV axes loads with `data.flip_y=true data.flip_z=true`.

The knobs pick the tiny random `sapiens_test` backbone so it runs on a CPU in a couple of minutes.
**Real work**: `BACKBONE = "sapiens_1b"`, `DEPTH_WEIGHTS = "sapiens_1b.depth_render_people"` and
`NORMAL_WEIGHTS = "sapiens_1b.normal_render_people"` (official fine-tuned heads: fine-tune further
or predict straight away), `IMG_SIZE = (1024, 768)`, and `DATA_ROOT` a folder with `train/` and
`val/`, each holding `images/`, `depth/` and/or `normal/`, and optionally `mask/`."""),
    ("code", """# Knobs: the only cell to edit.
BACKBONE = "sapiens_test"     # e.g. "sapiens_1b"
DEPTH_WEIGHTS = None          # e.g. "sapiens_1b.depth_render_people"
NORMAL_WEIGHTS = None         # e.g. "sapiens_1b.normal_render_people"
IMG_SIZE = (128, 96)          # (H, W); Sapiens is trained at (1024, 768)
MAX_EPOCHS = 3
DATA_ROOT = None              # None = generated synthetic scenes"""),
    ("code", """import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from sapiens_kit.data.datasets.dense_folder import read_depth, read_foreground, read_normal
from sapiens_kit.data.io import read_rgb
from sapiens_kit.data.synthetic import ensure_demo
from sapiens_kit.visualize import colorize_depth, colorize_normals, draw_prediction, hstack

work = Path(tempfile.mkdtemp())
root = Path(DATA_ROOT) if DATA_ROOT else ensure_demo(work / "cache", 8, 4, size=(256, 192))
print("data:", root, sorted(p.name for p in (root / "train").iterdir()))


def label_file(split, kind, stem):
    return next((root / split / kind).glob(stem + ".*"))"""),
    ("code", COMPOSE),
    ("code", CURVES),
    ("md", """## The data
Photo, depth (turbo colour map, near = warm) and normals; black outside the foreground."""),
    ("code", """stems = sorted(p.stem for p in (root / "val" / "images").iterdir())[:3]
rows = []
for stem in stems:
    fg = read_foreground(label_file("val", "mask", stem))
    rows.append(hstack([read_rgb(label_file("val", "images", stem)),
                        colorize_depth(read_depth(label_file("val", "depth", stem)), fg),
                        colorize_normals(read_normal(label_file("val", "normal", stem)), fg)]))
plt.figure(figsize=(10, 10)); plt.imshow(np.concatenate(rows, 0)); plt.axis("off"); plt.show()"""),
    ("md", """## Fine-tune depth, then normals
`python -m sapiens_kit.train task=depth ...` and `task=normal ...`, composed here. Both read the
same folder; the task picks the label."""),
    ("code", """from sapiens_kit.train import train

runs = {}
for task, weights in (("depth", DEPTH_WEIGHTS), ("normal", NORMAL_WEIGHTS)):
    out = work / f"{task}_run"
    overrides = [f"task={task}", f"backbone={BACKBONE}", f"img_size=[{IMG_SIZE[0]},{IMG_SIZE[1]}]",
                 f"trainer.max_epochs={MAX_EPOCHS}", "trainer.log_every_n_steps=1",
                 "num_overlays=0", f"paths.output_dir={out}"]
    if DATA_ROOT:
        overrides += [f"data={task}_folder", f"data.root={DATA_ROOT}", "data.num_workers=2"]
    else:  # the demo data config finds the scenes generated above in its cache
        overrides += [f"data.cache_dir={work / 'cache'}"]
    if weights:
        overrides.append(f"model.weights={weights}")
    metrics, objects = train(config("train", *overrides))
    runs[task] = (out, objects["model"])
    print(task, {k: round(v, 3) for k, v in metrics.items() if k.startswith("val/")})"""),
    ("md", "## Training curves"),
    ("code", """curves(runs["depth"][0], "train/loss", "val/rmse", "val/abs_rel")
curves(runs["normal"][0], "train/loss", "val/mean_angular_error", "val/within_30")"""),
    ("md", """## Predictions next to the ground truth
`predict_step` returns depth or unit normals at the photo's size, inside the foreground given by
`mask_dir`; `visualize.draw_prediction` draws any task's output (here the photo and the colour
map side by side)."""),
    ("code", """import torch
from sapiens_kit.data.collate import collate

stem = stems[0]
fg = read_foreground(label_file("val", "mask", stem))
pictures = []
for name, (out, model) in runs.items():
    dataset = model.eval().predict_dataset([label_file("val", "images", stem)],
                                           mask_dir=str(root / "val" / "mask"))
    with torch.no_grad():
        pred = model.predict_step(collate([dataset[0]]), 0)[0]
    truth = (colorize_depth(read_depth(label_file("val", "depth", stem)), fg) if name == "depth"
             else colorize_normals(read_normal(label_file("val", "normal", stem)), fg))
    pictures.append(hstack([draw_prediction(read_rgb(label_file("val", "images", stem)), pred,
                                            model), truth]))
plt.figure(figsize=(12, 8)); plt.imshow(np.concatenate(pictures, 0)); plt.axis("off")
plt.title("photo | prediction | ground truth   (top: depth, bottom: normals)"); plt.show()"""),
    ("md", """## Next
- Predict on files: `python -m sapiens_kit.predict task=depth ckpt=<run>/checkpoints/best.ckpt
  input=<photos or a video> mask_dir=<foreground masks>` writes `<stem>_depth.npy` (float32, the
  photo's size) and a colour picture; `task=normal` writes `<stem>_normal.npy` (H, W, 3).
- Official models without fine-tuning: `python -m sapiens_kit.predict task=depth
  weights=sapiens_1b.depth_render_people input=...`; the foreground masks can be a segmentation
  run's `*_mask.png` files.
- Metric depth from relative predictions: fit a scale and shift per image against a metric
  reference, as the metrics do (`sapiens_kit.metrics.depth`)."""),
]

CUSTOM_DATASET = [
    ("md", """# 04 · Your own dataset and classes

Segmentation data is two folders and a classes file:

```
my_parts/
  classes.json        {"classes": [...], "palette": [[r, g, b], ...], "flip_pairs": [...],
                       "class_weight": [...], "ignore_index": 255}    (only classes is required)
  train/images/*.jpg  train/masks/*.png    single-channel PNGs of class ids, same stem
  val/images/*.jpg    val/masks/*.png
```

This notebook builds such a dataset with classes of its own (`upper_body`, `lower_body`) from the
bundled person masks, shows the check that catches a broken file, fine-tunes on it, and feeds the
same data as a Hugging Face `datasets` table. It ends with a keypoint set of your own for pose.
The knobs pick the tiny random `sapiens_test` backbone so it runs on a CPU in a couple of minutes.

**Real work**: point `DATA_ROOT` at your folder, `BACKBONE = "sapiens_1b"`, and start from
`WEIGHTS = "sapiens_1b.pretrain_humans300m"` or from the official 28-class head
`"sapiens_1b.seg_goliath"`: with another number of classes every head layer but the last is kept
(the log says so)."""),
    ("code", """# Knobs: the only cell to edit.
BACKBONE = "sapiens_test"     # e.g. "sapiens_1b"
WEIGHTS = None                # e.g. "sapiens_1b.pretrain_humans300m" or "sapiens_1b.seg_goliath"
IMG_SIZE = (128, 96)          # (H, W); Sapiens is trained at (1024, 768)
MAX_EPOCHS = 4
DATA_ROOT = None              # None = build the upper/lower-body demo set below"""),
    ("code", """import json
import shutil
import tempfile
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np

from sapiens_kit.data import MaskFolderDataModule
from sapiens_kit.data.io import DataFileError, read_index_mask, read_rgb
from sapiens_kit.utils.config import asset_path
from sapiens_kit.visualize import overlay_mask

work = Path(tempfile.mkdtemp())"""),
    ("code", COMPOSE),
    ("code", CURVES),
    ("md", """## A dataset with new classes
Each person of the bundled masks (class 1) is split at 45% of its height into `upper_body` (1)
and `lower_body` (2); 255 stays "ignore". Three photos train, one validates."""),
    ("code", """def split_person(mask):
    out = np.where(mask == 255, 255, 0).astype(np.uint8)
    count, parts = cv2.connectedComponents((mask == 1).astype(np.uint8))
    rows = np.arange(mask.shape[0])[:, None]
    for c in range(1, count):
        ys = np.flatnonzero((parts == c).any(1))
        cut = ys[0] + 0.45 * (ys[-1] - ys[0])
        out[(parts == c) & (rows < cut)] = 1
        out[(parts == c) & (rows >= cut)] = 2
    return out


demo = Path(asset_path("demo_seg"))
root = Path(DATA_ROOT) if DATA_ROOT else work / "my_parts"
if not DATA_ROOT:
    for i, image in enumerate(sorted((demo / "images").iterdir())):
        split = "val" if i == 3 else "train"
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        shutil.copy(image, root / split / "images" / image.name)
        mask = split_person(read_index_mask(demo / "masks" / (image.stem + ".png")))
        cv2.imwrite(str(root / split / "masks" / (image.stem + ".png")), mask)
    (root / "classes.json").write_text(json.dumps({
        "classes": ["background", "upper_body", "lower_body"],
        "palette": [[0, 0, 0], [230, 80, 60], [60, 120, 230]],
        "class_weight": [0.5, 1.0, 1.0],
    }))
print((root / "classes.json").read_text())"""),
    ("code", """dm = MaskFolderDataModule(str(root), img_size=IMG_SIZE, num_workers=0)
dm.setup()
print(dm.classes.names, "|", len(dm.train_dataset), "train,", len(dm.val_dataset), "val")
samples = dm.train_dataset.samples + dm.val_dataset.samples
fig, axes = plt.subplots(1, len(samples), figsize=(4 * len(samples), 4))
for ax, (img, mask) in zip(axes, samples):
    ax.imshow(overlay_mask(read_rgb(img), read_index_mask(mask), dm.classes.palette, 0.6))
    ax.set_title(Path(img).name); ax.axis("off")
plt.show()"""),
    ("md", """## The checks
Before any training the data module reads every mask: ids outside the classes, unpaired files and
size mismatches are one error naming the file. Here a mask gets a stray id 7:"""),
    ("code", """broken = work / "broken"
shutil.copytree(root, broken)
bad = sorted((broken / "train" / "masks").iterdir())[0]
mask = read_index_mask(bad)
mask[:4, :4] = 7
cv2.imwrite(str(bad), mask)
try:
    MaskFolderDataModule(str(broken), img_size=IMG_SIZE).setup()
except DataFileError as err:
    print("DataFileError:", err)"""),
    ("md", """## Fine-tune on it
`python -m sapiens_kit.train task=seg data=mask_folder data.root=<folder> ...`: the classes file
sets the number of outputs, the names in the per-class metrics and the overlay colours."""),
    ("code", """from sapiens_kit.train import train

out_dir = work / "run"
overrides = ["task=seg", f"backbone={BACKBONE}", "data=mask_folder", f"data.root={root}",
             "data.num_workers=0", f"img_size=[{IMG_SIZE[0]},{IMG_SIZE[1]}]",
             f"trainer.max_epochs={MAX_EPOCHS}", "trainer.log_every_n_steps=1",
             "model.warmup_steps=2", "num_overlays=0", f"paths.output_dir={out_dir}",
             f"model.weights={WEIGHTS or 'null'}"]
metrics, objects = train(config("train", *overrides))
per_class = {k.split("/")[-1]: round(v, 3) for k, v in metrics.items() if k.startswith("val/IoU/")}
per_class"""),
    ("code", """curves(out_dir, "train/loss", "val/mIoU")
plt.figure(figsize=(4, 2.5)); plt.bar(list(per_class), list(per_class.values()))
plt.title("val IoU per class"); plt.ylim(0, 1); plt.show()"""),
    ("md", """## The same data as a Hugging Face `datasets` table
`data=hf_seg` takes a Hub dataset name or a local folder plus column names. The table is exported
once (cached by its fingerprint) to the folder layout above, so the same checks and pipelines
run. Here the folder becomes a `DatasetDict` saved to disk; a Hub dataset is `data.path=<org/name>`
(an imagefolder whose `metadata.jsonl` names each mask as `mask_file_name` works too)."""),
    ("code", """from datasets import Dataset, DatasetDict, Features, Image


def table(split):
    images = sorted((root / split / "images").iterdir())
    return Dataset.from_dict(
        {"pixel_values": [str(p) for p in images],
         "label": [str(root / split / "masks" / (p.stem + ".png")) for p in images]},
        features=Features({"pixel_values": Image(), "label": Image()}))


DatasetDict({"train": table("train"), "validation": table("val")}).save_to_disk(work / "hf_ds")
metrics, objects = train(config(
    "train", "task=seg", f"backbone={BACKBONE}", "data=hf_seg", f"data.path={work / 'hf_ds'}",
    "data.image_column=pixel_values", "data.mask_column=label", "data.num_workers=0",
    "data.classes=[background,upper_body,lower_body]", f"data.cache_dir={work / 'hf_cache'}",
    f"img_size=[{IMG_SIZE[0]},{IMG_SIZE[1]}]", "trainer.max_epochs=1", "model.weights=null",
    "num_overlays=0", f"paths.output_dir={work / 'hf_run'}"))
print(objects["model"].class_names, {k: round(v, 3) for k, v in metrics.items()
                                     if k in ("val/mIoU", "train/loss")})"""),
    ("md", """## Your own keypoints
Pose works the same way with a keypoint-set file (YAML or JSON) given as `data.keypoints=`: names,
left/right pairs (swapped on flips), OKS sigmas and the skeleton to draw."""),
    ("code", """import yaml
from sapiens_kit.data.keypoints import load_keypoint_set

hands_file = work / "hands.yaml"
hands_file.write_text(yaml.safe_dump({
    "name": "hands",
    "names": ["left_wrist", "right_wrist", "left_index_tip", "right_index_tip"],
    "flip_pairs": [["left_wrist", "right_wrist"], ["left_index_tip", "right_index_tip"]],
    "sigmas": 0.03,
    "skeleton": [["left_wrist", "left_index_tip"], ["right_wrist", "right_index_tip"]],
}))
hands = load_keypoint_set(str(hands_file))
print(hands.name, hands.names, "| flips", hands.flip_indices, "| skeleton", hands.skeleton)"""),
]

INFERENCE_EXPORT = [
    ("md", """# 05 · Inference and export

What to do with a fine-tuned checkpoint:

1. `predict` on a folder of photos and on a video (an annotated video plus per-frame files);
2. `export` to ONNX and TorchScript, each checked against the LightningModule;
3. share it on the Hugging Face Hub with a generated model card, and load it back with
   `weights=hf-hub:<org>/<name>`.

Each step calls the function behind a command (`python -m sapiens_kit.predict|export ...`) with the
same configuration. A quick segmentation run on the bundled demo makes the checkpoint; the tiny
random `sapiens_test` backbone keeps the notebook to a couple of minutes on a CPU.

**Real work**: set `CKPT` to your run's `checkpoints/best.ckpt`, or predict with official weights
and no checkpoint: `python -m sapiens_kit.predict task=seg weights=sapiens_1b.seg_goliath
input=<photos or a video>`."""),
    ("code", """# Knobs: the only cell to edit.
CKPT = None                   # None = train a quick demo model; or "<run>/checkpoints/best.ckpt"
BACKBONE = "sapiens_test"     # for the demo model
IMG_SIZE = (128, 96)
REPO_ID = "your-name/sapiens-seg-demo"   # the Hub repository to push to
PUSH = False                  # True uploads (needs `huggingface-cli login`); False: a folder"""),
    ("code", """import json
import shutil
import tempfile
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from sapiens_kit.utils.config import asset_path

work = Path(tempfile.mkdtemp())
photos = Path(asset_path("demo_seg")) / "images\""""),
    ("code", COMPOSE),
    ("code", """if CKPT is None:
    from sapiens_kit.train import train

    train(config("train", "task=seg", f"backbone={BACKBONE}", "trainer.max_epochs=3",
                 f"img_size=[{IMG_SIZE[0]},{IMG_SIZE[1]}]", "model.weights=null",
                 "num_overlays=0", f"paths.output_dir={work / 'run'}"))
    CKPT = work / "run" / "checkpoints" / "best.ckpt"
print("checkpoint:", CKPT)"""),
    ("md", """## Predict on a folder
`python -m sapiens_kit.predict task=seg ckpt=... input=<folder> output=<folder>`. The output holds
`<stem>_mask.png` (class ids at the photo's size), `<stem>_overlay.jpg` and `summary.json`. A file
that is not a readable image is skipped and listed, not a crash; the output may not be inside the
input folder, and an error leaves no half-written output behind."""),
    ("code", """from sapiens_kit.predict import predict

inputs = work / "inputs"
shutil.copytree(photos, inputs)
(inputs / "notes.jpg").write_text("not a photo")
predict(config("predict", "task=seg", f"ckpt={CKPT}", f"input={inputs}"), work / "pred")
summary = json.loads((work / "pred" / "summary.json").read_text())
print("skipped:", [(Path(s["path"]).name, s["reason"][:50]) for s in summary["skipped"]])
overlays = sorted((work / "pred").glob("*_overlay.jpg"))
fig, axes = plt.subplots(1, len(overlays), figsize=(4 * len(overlays), 4))
for ax, path in zip(axes, overlays):
    ax.imshow(Image.open(path)); ax.set_title(path.name); ax.axis("off")
plt.show()"""),
    ("md", """## Predict on a video
A short clip (a slow pan across a demo photo) goes through frame by frame. The output holds
`<clip>_overlay.mp4` and `<clip>_frames/` with the per-frame masks and overlays; `video_stride=N`
keeps every N-th frame and `max_frames=` stops early."""),
    ("code", """photo = cv2.imread(str(sorted(photos.iterdir())[0]))
small = cv2.resize(photo, (photo.shape[1] // 2, photo.shape[0] // 2))
width, height = small.shape[1] * 2 // 3 // 2 * 2, small.shape[0] // 2 * 2
clip = work / "clips" / "pan.mp4"
clip.parent.mkdir()
writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 8, (width, height))
for i in range(12):
    x = round(i * (small.shape[1] - width) / 11)
    writer.write(np.ascontiguousarray(small[:height, x : x + width]))
writer.release()

predict(config("predict", "task=seg", f"ckpt={CKPT}", f"input={clip}"), work / "video_pred")
video = json.loads((work / "video_pred" / "summary.json").read_text())["videos"][0]
print(video)
cap = cv2.VideoCapture(str(work / "video_pred" / video["video"]))
frames = [cv2.cvtColor(cap.read()[1], cv2.COLOR_BGR2RGB) for _ in range(video["frames"])]
fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
for ax, i in zip(axes, (0, 4, 8, 11)):
    ax.imshow(frames[i]); ax.set_title(f"frame {i}"); ax.axis("off")
plt.show()"""),
    ("md", """## Export: ONNX and TorchScript
`python -m sapiens_kit.export task=seg ckpt=... format=onnx|torchscript|safetensors`. The exported
model takes float RGB `(B, 3, H, W)` on a 0-255 scale at the model size and returns the raw head
output; each export is run once against the LightningModule and fails when they differ by more
than `tolerance`."""),
    ("code", """from sapiens_kit.export import export

for fmt in ("onnx", "torchscript"):
    report = export(config("export", "task=seg", f"ckpt={CKPT}", f"format={fmt}"),
                    work / "export")
    name, diff = Path(report["file"]).name, report["max_abs_diff"]
    print(f"{fmt:12s} {name:24s} max |diff| vs the LightningModule = {diff:.2e}")"""),
    ("md", "The ONNX file in onnxruntime alone (no PyTorch model), on a photo:"),
    ("code", """import onnxruntime as ort
import torch.nn.functional as F
from sapiens_kit.tasks import SegmentationTask
from sapiens_kit.visualize import overlay_mask, task_palette

task = SegmentationTask.load_from_checkpoint(CKPT, weights=None).eval()
rgb = cv2.cvtColor(cv2.imread(str(sorted(photos.iterdir())[1])), cv2.COLOR_BGR2RGB)
x = cv2.resize(rgb, task.img_size[::-1]).transpose(2, 0, 1)[None].astype(np.float32)
session = ort.InferenceSession(str(work / "export" / "model.onnx"))
logits = session.run(None, {"images": x})[0]
label = F.interpolate(torch.from_numpy(logits), size=rgb.shape[:2], mode="bilinear").argmax(1)[0]
with torch.no_grad():
    same = task(torch.from_numpy(x)).numpy()
print("onnxruntime vs LightningModule, max |diff|:", float(np.abs(logits - same).max()))
plt.figure(figsize=(5, 5)); plt.imshow(overlay_mask(rgb, label.numpy(), task_palette(task)))
plt.axis("off"); plt.show()"""),
    ("md", """## Share on the Hub
`push_to_hub` writes `model.safetensors` (the weights, with the task's arguments in its metadata),
`config.json` and a model card (task, classes or keypoints, metrics, and the licence of the base
weights: Sapiens v1 is CC-BY-NC-4.0, non-commercial; Sapiens2 has its own licence) and uploads
them. `local_dir=` writes the folder instead. `from_pretrained` or `weights=hf-hub:<org>/<name>`
loads it back (from the local Hugging Face cache when it is there)."""),
    ("code", """from sapiens_kit.hub import from_pretrained, push_to_hub

where = push_to_hub(CKPT, REPO_ID, **({} if PUSH else {"local_dir": work / "hub"}))
print("pushed:" if PUSH else "written to", where)
if not PUSH:
    print((Path(where) / "README.md").read_text()[:1000])"""),
    ("code", """source = f"hf-hub:{REPO_ID}" if PUSH else str(work / "hub")
shared = from_pretrained(source, task="seg")
x = torch.randint(0, 255, (1, 3, *task.img_size), dtype=torch.uint8)
with torch.no_grad():
    print("reloaded == checkpoint:", torch.equal(shared(x), task(x)))
# The command line takes the same source: predict weights=<source> input=...
predict(config("predict", f"weights={source}", f"input={photos}"), work / "pred_from_hub")
print(sorted(p.name for p in (work / "pred_from_hub").glob("*_mask.png")))"""),
]

if __name__ == "__main__":
    write("01_quickstart_segmentation", QUICKSTART_SEG)
    write("02_finetune_pose_coco_wholebody", FINETUNE_POSE)
    write("03_depth_and_normals", DEPTH_NORMALS)
    write("04_custom_dataset_and_classes", CUSTOM_DATASET)
    write("05_inference_and_export", INFERENCE_EXPORT)
