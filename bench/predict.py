"""End-to-end ``predict`` throughput against the bare model forward, and where the time goes.

In one process, on the same images and the same model, this alternates two measurements:

- **end to end**: ``sapiens_kit.predict.predict(cfg, output)`` on a folder of images (decode,
  detect, pre-process, forward, post-process, write: every file of a real run), in images/s;
- **bare forward**: only the model's forward passes on the tensors the pipeline feeds it (the
  same crops, batches and number of passes per batch, e.g. two with the pose flip test), in
  images/s.

It prints their ratio on one line (1.0: the pipeline costs nothing beyond the model). The model
is a random-weights task of ``--backbone`` saved as a checkpoint and loaded once; the runs reuse
it (``predict``'s ``build_task`` is pointed at it), so the figure is the steady state, not the
start-up (see ``bench/startup.py`` for that). Detector weights come from the usual caches or,
when none are cached (offline), are random (``detector.weights=null``); a random detector finds
an arbitrary number of people, which is printed.

Where the time goes is measured without a profiler and without hooks in ``predict.py``: each
stage runs on its own, on the same inputs, one after the other, with the task's own steps:
decode (``read_rgb`` of each image), detect (``detect`` in the detector's batch size),
pre-process (iterating ``predict_dataset`` into batches, minus the decode time it includes),
forward (as above), post-process (``predict_step`` minus its forward passes) and write
(``save_predictions``). Run one after the other they do not overlap, while the end-to-end run
may overlap some of them; their sum is what the pipeline costs when nothing overlaps.

    python bench/predict.py                                   # sapiens_0_3b at 512x384
    python bench/predict.py --backbone sapiens_test --size 256 192 --detector none
    python bench/predict.py --input photos/ --images 16 --detector rtdetr
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from PIL import Image
from torch.utils.data import DataLoader

import sapiens_kit.predict as predict_app
from sapiens_kit.data.collate import collate
from sapiens_kit.data.io import IMAGE_SUFFIXES, read_rgb
from sapiens_kit.utils.config import CONFIG_DIR

STAGES = ("decode", "detect", "pre-process", "forward", "post-process", "write")


# ------------------------------------------------------------------------------ set-up
def random_task_checkpoint(path: Path, task: str, backbone: str, size: tuple[int, int]) -> Any:
    """A random-weights ``task`` model as the train config builds it, saved as a checkpoint."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"task={task}", f"backbone={backbone}",
                                          f"img_size=[{size[0]},{size[1]}]",
                                          "model.weights=null", "paths.output_dir=unused"])
    model = instantiate(cfg.model, _convert_="all").eval()
    cls = type(model)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": lightning.__version__,
                "sapiens_kit": {"task_class": f"{cls.__module__}.{cls.__qualname__}"}}, path)
    return model


def photos(folder: Path, source: Path | None, n: int, seed: int = 0) -> list[Path]:
    """``n`` images in ``folder``: copies of the images in ``source`` (cycled), else synthetic
    640x480 JPEGs (smooth colour fields with noise, so they decode and compress like photos)."""
    folder.mkdir(parents=True)
    found = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) \
        if source else []
    if source and not found:
        raise SystemExit(f"{source}: no images")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if found:
            dst = folder / f"{i:06d}{found[i % len(found)].suffix.lower()}"
            shutil.copyfile(found[i % len(found)], dst)
        else:
            y, x = np.mgrid[0:480, 0:640]
            base = np.stack([x / 640, y / 480, (x + y) / 1120], axis=-1) * rng.uniform(80, 255)
            pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            dst = folder / f"{i:06d}.jpg"
            Image.fromarray(pixels).save(dst, quality=90)
        out.append(dst)
    return out


def predict_config(ckpt: Path, inputs: Path, detector: str | None, batch_size: int) -> DictConfig:
    """The predict app's config for this run; the detector group only where the config has one
    (a kit without detectors runs ``--detector none`` as the whole-image pose it does)."""
    overrides = [f"ckpt={ckpt}", f"input={inputs}", "accelerator=cpu",
                 f"batch_size={batch_size}", "paths.output_dir=unused"]
    has_detectors = (Path(CONFIG_DIR) / "detector").is_dir()
    if detector is not None and has_detectors:
        overrides.append(f"detector={detector}")
    elif detector not in (None, "none"):
        raise SystemExit(f"--detector {detector}: this kit has no detectors (conf/detector)")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("predict", overrides=overrides)


def build_detector(cfg: DictConfig) -> tuple[Any | None, str]:
    """The configured person detector (``None`` for ``none`` or a kit without detectors) and
    where its weights came from; random weights (``detector.weights=null``, also set in
    ``cfg`` so the end-to-end runs use the same) when the configured ones are not cached."""
    node = cfg.get("detector")
    if node is None or node.get("name") in (None, "none"):
        return None, "no detector: the whole image is one person"
    from sapiens_kit.detectors import build_detector as build

    try:
        return build(node, device="cpu"), f"{node.name}, weights {node.get('weights')}"
    except Exception as err:  # not cached and offline (the reason is printed)
        with open_dict(cfg):
            cfg.detector.weights = None
        return build(cfg.detector, device="cpu"), (
            f"{node.name}, random weights (detector.weights=null: {err})")


@contextmanager
def preloaded(task: Any, detector: Any | None, calls: list[str]) -> Iterator[None]:
    """``predict`` uses ``task`` and ``detector`` instead of building them again (``calls``
    records each time it asked for one: a name missing there means this kit's predict builds
    that elsewhere, and the end-to-end time then includes building it)."""
    import importlib

    patched: list[tuple[Any, str, Any]] = []

    def patch(module: Any, name: str, made: Any) -> None:
        original = getattr(module, name)

        def build(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return made

        patched.append((module, name, original))
        setattr(module, name, build)

    patch(predict_app, "build_task", task)
    if detector is not None:
        patch(importlib.import_module("sapiens_kit.detectors"), "build_detector", detector)
    try:
        yield
    finally:
        for module, name, original in patched:
            setattr(module, name, original)


# ------------------------------------------------------------------------------ the stages
class Stages:
    """The pipeline's steps, each run on its own on the same inputs, timed one by one."""

    def __init__(self, task: Any, detector: Any | None, images: list[Path], batch_size: int,
                 cfg: DictConfig) -> None:
        self.task, self.detector, self.images = task, detector, images
        self.batch_size, self.cfg = batch_size, cfg
        self.options: dict[str, Any] = {}
        self.batches: list[dict[str, Any]] = []
        self.passes = 1

    def decode(self) -> list[np.ndarray]:
        return [read_rgb(p) for p in self.images]

    def detect(self, decoded: list[np.ndarray]) -> None:
        if self.detector is None:
            return
        found: dict[str, Any] = {}
        size = max(1, int(getattr(self.detector, "batch_size", 1)))
        for i in range(0, len(decoded), size):
            names = [str(p) for p in self.images[i:i + size]]
            found.update(zip(names, self.detector.detect(decoded[i:i + size], names),
                             strict=True))
        self.options = {"detections": found,
                        "padding": float(self.cfg.detector.get("padding", 1.25))}

    def preprocess(self) -> None:
        dataset = self.task.predict_dataset(self.images, **self.options)
        loader = DataLoader(dataset, batch_size=self.batch_size, num_workers=0,
                            collate_fn=collate)
        self.batches = list(loader)

    def count_passes(self) -> None:
        """How many model forwards one ``predict_step`` makes (two with a flip test)."""
        calls = []
        handle = self.task.register_forward_hook(lambda *_: calls.append(1))
        try:
            with torch.inference_mode():
                self.task.predict_step(self.batches[0], 0)
        finally:
            handle.remove()
        self.passes = max(1, len(calls))

    def forward(self) -> None:
        with torch.inference_mode():
            for batch in self.batches:
                for n in range(self.passes):  # the flipped pass costs the same
                    self.task(batch["image"].flip(-1) if n else batch["image"])

    def predict_steps(self) -> list[Any]:
        with torch.inference_mode():
            return [self.task.predict_step(b, i) for i, b in enumerate(self.batches)]

    def write(self, outputs: list[Any], folder: Path) -> None:
        self.task.save_predictions(outputs, folder)

    def people(self) -> int:
        return sum(len(b["image"]) for b in self.batches)


#: CPU seconds of this process per stage, beside the wall seconds ``timed`` returns: on a shared
#: machine the CPU time is the steadier figure (other jobs' load stretches the wall time).
CPU: dict[str, float] = {}


def timed(fn: Callable[[], Any], cpu_key: str | None = None) -> tuple[float, Any]:
    start, start_cpu = time.perf_counter(), time.process_time()
    result = fn()
    if cpu_key is not None:
        CPU[cpu_key] = time.process_time() - start_cpu
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="sapiens_0_3b")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 384), metavar=("H", "W"))
    parser.add_argument("--detector", default=None,
                        help="a detector config (rtdetr, torchvision, detr, none); default: "
                             "predict's default")
    parser.add_argument("--task", default="pose")
    parser.add_argument("--images", type=int, default=8, help="images per run")
    parser.add_argument("--input", type=Path, default=None,
                        help="a folder of photos to use (default: synthetic 640x480 JPEGs)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = (args.size[0], args.size[1])

    with tempfile.TemporaryDirectory(prefix="sapiens_kit_bench_predict_") as tmp:
        root = Path(tmp)
        ckpt = root / "model.ckpt"
        task = random_task_checkpoint(ckpt, args.task, args.backbone, size)
        images = photos(root / "input", args.input, args.images)
        cfg = predict_config(ckpt, root / "input", args.detector, args.batch_size)
        detector, detector_note = build_detector(cfg)
        stages = Stages(task, detector, images, args.batch_size, cfg)

        reused: list[str] = []

        e2e_cpu: list[float] = []
        forward_cpu: list[float] = []

        def end_to_end(i: int) -> float:
            out = root / f"out_{i}"
            with preloaded(task, detector, reused):
                seconds, _ = timed(lambda: predict_app.predict(cfg, out), "e2e")
            shutil.rmtree(out)
            e2e_cpu.append(CPU["e2e"])
            return seconds

        def breakdown(i: int) -> dict[str, float]:
            t: dict[str, float] = {}
            t["decode"], decoded = timed(stages.decode)
            t["detect"], _ = timed(lambda: stages.detect(decoded))
            dataset_s, _ = timed(stages.preprocess)
            t["pre-process"] = max(0.0, dataset_s - t["decode"])
            t["forward"], _ = timed(stages.forward, "forward")
            forward_cpu.append(CPU["forward"])
            steps_s, outputs = timed(stages.predict_steps)
            t["post-process"] = max(0.0, steps_s - t["forward"])
            t["write"], _ = timed(lambda: stages.write(outputs, root / f"stages_{i}"))
            shutil.rmtree(root / f"stages_{i}", ignore_errors=True)
            return t

        end_to_end(-1)  # warm-up: first-call costs (allocator, lazy imports) of both paths
        e2e_cpu.clear()
        stages.detect(stages.decode())
        stages.preprocess()
        stages.count_passes()
        stages.forward()
        e2e, parts = [], []
        for i in range(args.repeats):  # alternated: background load hits both alike
            e2e.append(end_to_end(i))
            parts.append(breakdown(i))

    n = len(images)
    median = {s: statistics.median(p[s] for p in parts) for s in STAGES}
    e2e_ips, bare_ips = n / statistics.median(e2e), n / median["forward"]
    total = sum(median.values())
    print(f"{args.task} {args.backbone} at {size[0]}x{size[1]}, {n} images "
          f"({'given' if args.input else 'synthetic 640x480'}), {stages.people()} person crops, "
          f"{stages.passes} forward pass(es) per crop, batch {args.batch_size}, "
          f"{args.threads} threads, CPU, torch {torch.__version__}, median of {args.repeats}")
    print(f"detector: {detector_note}")
    for name in ("build_task", "build_detector")[:2 if detector is not None else 1]:
        if name not in reused:
            print(f"note: predict did not call {name}: end to end includes building it")
    print("stage times, each run on its own (s): " + ", ".join(
        f"{s} {median[s]:.3f} ({median[s] / total:.0%})" for s in STAGES)
        + f"; sum {total:.3f}")
    print("runs (s): end to end " + ", ".join(f"{t:.2f}" for t in e2e) + "; bare forward "
          + ", ".join(f"{p['forward']:.2f}" for p in parts))
    cpu_ratio = statistics.median(forward_cpu) / statistics.median(e2e_cpu)
    print(f"end to end {e2e_ips:.3f} images/s, bare forward {bare_ips:.3f} images/s, "
          f"ratio {e2e_ips / bare_ips:.3f} (wall time; {cpu_ratio:.3f} by this process's CPU "
          "time)")


if __name__ == "__main__":
    main()
