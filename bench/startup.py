"""Start-up of ``predict`` with a training checkpoint: whole-process wall time and peak memory.

Builds, in a temporary folder deleted afterwards, a training checkpoint of the size a run writes
(random weights of ``--backbone`` for the seg task, plus AdamW's two states per weight, as
Lightning saves them: 3.7 GB for ``sapiens_0_3b``) and one photo, then runs
``python -m sapiens_kit.predict ckpt=<it> input=<the photo>`` ``--repeats`` times, each in a fresh
process, and prints the median wall time, CPU time and peak resident memory (``VmHWM``, read by
the child itself). A second fresh process per run times ``load_task(ckpt)`` alone, after its
imports: the checkpoint reading without the import time that dominates a loaded machine.
With ``--compare SRC`` the same command also runs with the sapiens_kit source tree at ``SRC``
(an older checkout's ``src``), alternating with this one so background load hits both alike.

    python bench/startup.py                                   # sapiens_0_3b at 1024x768
    python bench/startup.py --backbone sapiens_test --size 256 192 --repeats 5
    python bench/startup.py --compare /path/to/older/checkout/src
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import lightning
import numpy as np
import torch
from PIL import Image

import sapiens_kit
from sapiens_kit.tasks import SegmentationTask

HERE_SRC = Path(sapiens_kit.__file__).resolve().parents[1]


def training_checkpoint(path: Path, backbone: str, size: tuple[int, int]) -> int:
    """Write a seg checkpoint with AdamW state as a training run does; returns its size in bytes.

    The optimizer takes one step on zero gradients so its state has the real layout (``step``,
    ``exp_avg``, ``exp_avg_sq`` per weight and the layer-decay parameter groups).
    """
    task = SegmentationTask(backbone=backbone, img_size=list(size), weights=None, num_classes=2,
                            class_names=["background", "person"])
    optimizer = task.configure_optimizers()["optimizer"]
    for p in task.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    optimizer.step()
    task.zero_grad(set_to_none=True)
    torch.save({
        "epoch": 29, "global_step": 1000, "pytorch-lightning_version": lightning.__version__,
        "state_dict": task.state_dict(), "hparams_name": "kwargs",
        "hyper_parameters": dict(task.hparams), "optimizer_states": [optimizer.state_dict()],
        "lr_schedulers": [{"last_epoch": 1000}], "loops": {}, "callbacks": {},
        "sapiens_kit": {"task_class": "sapiens_kit.tasks.seg.SegmentationTask"},
    }, path)
    return path.stat().st_size


#: Run in the child: ``predict``'s own module as ``__main__``, then its peak resident memory
#: (``ru_maxrss`` of a child would include what it inherited from this large parent at fork).
PREDICT = """
import atexit, runpy, sys
def peak():
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
    print(f"VmHWM_kB {hwm}", file=sys.stderr)
atexit.register(peak)
sys.argv = ["predict", *sys.argv[1:]]
runpy.run_module("sapiens_kit.predict", run_name="__main__")
"""

#: Run in the child: the seconds ``load_task`` takes, its imports done first.
LOAD = """
import sys, time
from sapiens_kit.utils.cli import load_task
import sapiens_kit.tasks
start = time.perf_counter()
load_task(sys.argv[1])
print(f"load_s {time.perf_counter() - start}", file=sys.stderr)
"""


def run(src: Path, code: str, *argv: str) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds and stderr of ``python -c code argv`` importing ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"failed with {src}:\n{stderr[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, stderr


def figure(stderr: str, name: str) -> float:
    return float(next(line.split()[1] for line in stderr.splitlines() if line.startswith(name)))


def run_predict(src: Path, ckpt: Path, image: Path, out: Path) -> tuple[float, float, float,
                                                                           float]:
    """Wall seconds, CPU seconds and peak resident MB of one ``predict`` process importing
    ``src`` (on a shared machine the CPU time is the steadier figure), and the seconds of
    ``load_task`` alone in another process."""
    wall, cpu, stderr = run(src, PREDICT, f"ckpt={ckpt}", f"input={image}", f"output={out}",
                            "accelerator=cpu", f"hydra.run.dir={out.parent / 'hydra'}")
    load = figure(run(src, LOAD, str(ckpt))[2], "load_s")
    return wall, cpu, figure(stderr, "VmHWM_kB") / 1024, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="sapiens_0_3b")
    parser.add_argument("--size", type=int, nargs=2, default=(1024, 768))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", type=Path, default=None,
                        help="another sapiens_kit source tree to alternate with")
    parser.add_argument("--tmp", type=Path, default=None, help="where to build the checkpoint")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sapiens_kit_startup_", dir=args.tmp) as tmp:
        folder = Path(tmp)
        ckpt = folder / "last.ckpt"
        # In a child process, so that this one stays small (children inherit its peak memory).
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            size_gb = pool.submit(training_checkpoint, ckpt, args.backbone,
                                  (args.size[0], args.size[1])).result() / 1e9
        (folder / "input").mkdir()
        image = folder / "input" / "photo.jpg"
        pixels = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(image)
        trees = {"this": HERE_SRC, **({"compare": args.compare} if args.compare else {})}
        results: dict[str, list[tuple[float, float, float, float]]] = {n: [] for n in trees}
        for i in range(args.repeats):
            for name, src in trees.items():
                results[name].append(run_predict(src, ckpt, image, folder / f"out_{name}_{i}"))
        print(f"{args.backbone} seg checkpoint at {args.size[0]}x{args.size[1]} with AdamW state, "
              f"{size_gb:.2f} GB, one 640x480 photo, median of {args.repeats} processes, "
              f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
        for name, src in trees.items():
            walls, cpus, peaks, loads = zip(*results[name], strict=True)
            print(f"{name:<8} {src}: wall {statistics.median(walls):.1f} s "
                  f"(runs {', '.join(f'{w:.1f}' for w in walls)}), "
                  f"CPU {statistics.median(cpus):.1f} s, "
                  f"peak RSS {statistics.median(peaks) / 1024:.2f} GB, "
                  f"load_task alone {statistics.median(loads):.1f} s "
                  f"(runs {', '.join(f'{x:.1f}' for x in loads)})")


if __name__ == "__main__":
    main()
