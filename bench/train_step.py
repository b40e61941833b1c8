"""Training-step time of the kit (LightningModule + Trainer) vs a bare PyTorch loop.

Both run in this one process on the same model weights, the same batches, the same optimizer
(AdamW with the layer-decay groups and the per-step LR schedule), the same gradient clipping
(norm 1.0) and the same autocast precision; rounds of the two alternate so background load hits
both alike. The kit's step time is the interval between consecutive ``on_train_batch_start``
calls (data fetch, forward, backward, clipping, optimizer, scheduler, logging and the default NaN
guard included); the bare loop's is the same interval in a plain ``for`` loop. Both wall time and
this process's CPU time are reported: on a shared machine the CPU time is the steadier figure.

    python bench/train_step.py                                  # sapiens_0_3b at 256x192, fp32+bf16
    python bench/train_step.py --backbone sapiens_test --size 64 48 --steps 20
"""

from __future__ import annotations

import argparse
import copy
import gc
import itertools
import statistics
import time
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from sapiens_kit.callbacks import NonFiniteLossGuard
from sapiens_kit.data.collate import collate
from sapiens_kit.tasks import SegmentationTask


class Synthetic(Dataset):
    """Seeded uint8 images and label maps at the model size."""

    def __init__(self, n: int, size: tuple[int, int], num_classes: int) -> None:
        gen = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (n, 3, *size), generator=gen, dtype=torch.uint8)
        self.masks = torch.randint(0, num_classes, (n, *size), generator=gen)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "mask": self.masks[i]}


class StepTimer(L.Callback):
    """Time between consecutive training-batch starts."""

    def __init__(self) -> None:
        self.stamps: list[tuple[float, float]] = []

    def on_train_batch_start(self, *args: Any) -> None:
        self.stamps.append(stamp())


def stamp() -> tuple[float, float]:
    """(wall, process CPU) seconds."""
    return time.perf_counter(), time.process_time()


def intervals(stamps: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(stamps)]


Times = list[tuple[float, float]]


def kit_steps(task: SegmentationTask, loader: DataLoader, steps: int, precision: str) -> Times:
    """Per-step seconds of ``Trainer.fit`` (the first interval, with warm-up, is dropped)."""
    timer = StepTimer()
    trainer = L.Trainer(
        accelerator="cpu", devices=1, precision=precision, max_steps=steps + 1, max_epochs=-1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, gradient_clip_val=1.0, gradient_clip_algorithm="norm",
        num_sanity_val_steps=0, limit_val_batches=0, callbacks=[timer, NonFiniteLossGuard()],
    )
    trainer.fit(task, train_dataloaders=loader)
    return intervals(timer.stamps)[1:]


def bare_steps(task: SegmentationTask, loader: DataLoader, steps: int, precision: str) -> Times:
    """Per-step seconds of a plain loop doing the same work."""
    conf = task.configure_optimizers()
    optimizer, scheduler = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    task.train()
    stamps: list[tuple[float, float]] = []
    it = iter(loader)
    for _ in range(steps + 2):
        stamps.append(stamp())
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        with autocast:
            loss = task.loss_fn(task(batch["image"]), batch["mask"])
        if not torch.isfinite(loss):
            raise FloatingPointError("non-finite loss")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(task.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
    return intervals(stamps)[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="sapiens_0_3b")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 192))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = tuple(args.size)
    head = {"deconv_channels": [768] * 3, "conv_channels": [768] * 3, "dropout": 0.0}
    torch.manual_seed(0)
    base = SegmentationTask(backbone=args.backbone, img_size=size, num_classes=28, head=head,
                            warmup_steps=2)
    loader = DataLoader(Synthetic(args.batch * 8, size, 28), batch_size=args.batch,
                        shuffle=False, collate_fn=collate)
    print(f"{args.backbone} seg at {size[0]}x{size[1]}, batch {args.batch}, {args.threads} "
          f"threads, torch {torch.__version__}, lightning {L.__version__}")
    print(f"{'precision':<12}{'kit s/step':>12}{'bare s/step':>13}{'kit/bare':>10}"
          f"{'kit cpu-s':>11}{'bare cpu-s':>12}{'kit/bare':>10}{'steps':>7}")
    for precision in args.precision:
        kit: Times = []
        bare: Times = []
        for _ in range(args.rounds):
            kit += kit_steps(copy.deepcopy(base), loader, args.steps, precision)
            gc.collect()  # the Trainer <-> module cycles hold a model and its AdamW state
            bare += bare_steps(copy.deepcopy(base), loader, args.steps, precision)
            gc.collect()
        kw, bw = (statistics.median(t[0] for t in x) for x in (kit, bare))
        kc, bc = (statistics.median(t[1] for t in x) for x in (kit, bare))
        print(f"{precision:<12}{kw:>12.3f}{bw:>13.3f}{kw / bw:>10.3f}"
              f"{kc:>11.3f}{bc:>12.3f}{kc / bc:>10.3f}{len(kit):>7}")


if __name__ == "__main__":
    main()
