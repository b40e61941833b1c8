"""Peak memory of one fine-tuning step of Sapiens v1 at 1024x768, batch 1, per memory setting.

Each measurement runs in a fresh process: build the segmentation task (official Goliath head, 28
classes), allocate the AdamW state (a dry optimizer step), then run one real training step
(forward, backward, clip, step; with the optimizer state already there this is the steady-state
peak) and report the process's peak resident memory above its after-import baseline. Settings:

    fp32        full fine-tuning, float32
    bf16        full fine-tuning, bf16 autocast (weights, gradients and AdamW state stay fp32)
    bf16+ckpt   + per-block gradient checkpointing
    lora        + LoRA r=16 on attention and MLP linears (base weights frozen)
    frozen      + frozen backbone (head only)

Sizes that do not fit this machine are derived: the parameter, gradient and AdamW bytes are
exact (4 + 4 + 8 bytes per trainable parameter, 4 per frozen one), and the rest (activations,
head, framework) is fitted per setting as ``alpha * L * N * D + H`` (L blocks, N tokens, D width)
by least squares over the measured points, which include shallower copies of the same widths
(``depth`` override) so the fit is checked on points it did not need. The GPU "fits" columns
add 1.5 GB (CUDA context and allocator slack) to the prediction.

    python bench/memory.py --out bench/memory.json        # measure what fits, then the table
    python bench/memory.py --table bench/memory.json      # table from saved measurements
    python bench/memory.py --worker sapiens_0_3b bf16 24  # one measurement (JSON on stdout)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = ("fp32", "bf16", "bf16+ckpt", "lora", "frozen")
SIZES = {"sapiens_0_3b": (1024, 24), "sapiens_0_6b": (1280, 32), "sapiens_1b": (1536, 40),
         "sapiens_2b": (1920, 48)}
TOKENS = (1024 // 16) * (768 // 16)
GB = 1024**3
#: Default measurement plan: (backbone, depth) pairs per setting, cheapest first.
PLAN = [("sapiens_0_3b", 6), ("sapiens_0_3b", 24), ("sapiens_0_6b", 8), ("sapiens_0_6b", 32),
        ("sapiens_1b", 40), ("sapiens_2b", 48)]


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(backbone: str, setting: str, depth: int) -> dict[str, float]:
    """One measurement in this process (call in a fresh one)."""
    import torch

    from sapiens_kit.tasks import SegmentationTask

    torch.manual_seed(0)
    base = rss_bytes()
    task = SegmentationTask(
        backbone=backbone, img_size=(1024, 768), num_classes=28,
        backbone_overrides={"depth": depth},
        head={"deconv_channels": [768] * 3, "conv_channels": [768] * 3, "dropout": 0.1},
        grad_checkpointing=setting in ("bf16+ckpt", "lora", "frozen"),
        lora={"r": 16, "alpha": 32} if setting == "lora" else None,
        freeze_backbone=setting == "frozen",
    ).train()
    optimizer = task.configure_optimizers()["optimizer"]
    trainable = [p for p in task.parameters() if p.requires_grad]
    for p in trainable:  # dry step: allocate the AdamW state before measuring
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    image = torch.randint(0, 256, (1, 3, 1024, 768), dtype=torch.uint8)
    mask = torch.randint(0, 28, (1, 1024, 768))
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting != "fp32"):
        loss = task.loss_fn(task(image), mask)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "backbone": backbone, "setting": setting, "depth": depth,
        "dim": SIZES[backbone][0], "params": sum(p.numel() for p in task.parameters()),
        "trainable": sum(p.numel() for p in trainable), "peak_gb": (peak - base) / GB,
        "step_s": time.perf_counter() - start,
    }


def static_gb(params: float, trainable: float) -> float:
    """fp32 weights + gradients + AdamW moments."""
    return (4 * params + 12 * trainable) / GB


def full_counts(backbone: str, setting: str) -> tuple[float, float]:
    """(parameters, trainable parameters) of the full-depth task, from the module definitions."""
    dim, depth = SIZES[backbone]
    block = 12 * dim * dim + 13 * dim
    vit = depth * block + 16 * 16 * 3 * dim + dim + TOKENS * dim + 2 * dim
    head = 16 * dim * 768 + 2 * 16 * 768 * 768 + 3 * (768 * 768 + 768) + 768 * 28 + 28
    lora = depth * 16 * (dim + 3 * dim + dim + dim + dim + 4 * dim + 4 * dim + dim)
    total = vit + head + (lora if setting == "lora" else 0)
    trainable = {"lora": lora + head, "frozen": head}.get(setting, vit + head)
    return total, trainable


def fit(points: list[dict[str, float]]) -> tuple[float, float]:
    """Least-squares ``(alpha, H)`` of ``peak - static = alpha * L*N*D + H``."""
    xs = [p["depth"] * TOKENS * p["dim"] for p in points]
    ys = [p["peak_gb"] - static_gb(p["params"], p["trainable"]) for p in points]
    if len(points) == 1:
        return 0.0, ys[0]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    alpha = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return alpha, my - alpha * mx


def table(results: list[dict[str, float]]) -> str:
    """Markdown: predicted (measured) peak per size and setting, and the fit check."""
    lines = ["| size | setting | peak GB | source | fits 24 / 48 / 80 GB |",
             "|---|---|---|---|---|"]
    check = []
    for setting in SETTINGS:
        pts = [r for r in results if r["setting"] == setting]
        if not pts:
            continue
        alpha, head = fit(pts)
        for p in pts:
            pred = static_gb(p["params"], p["trainable"]) + alpha * p["depth"] * TOKENS * p[
                "dim"] + head
            check.append(f"{setting} {p['backbone']} depth {p['depth']}: measured "
                         f"{p['peak_gb']:.2f} GB, fit {pred:.2f} GB")
        for backbone, (dim, depth) in SIZES.items():
            measured = [p for p in pts if p["backbone"] == backbone and p["depth"] == depth]
            params, trainable = full_counts(backbone, setting)
            if measured:
                gb, source = measured[0]["peak_gb"], "measured"
            else:
                gb, source = static_gb(params, trainable) + alpha * depth * TOKENS * dim + head, \
                    "derived"
            fits = " / ".join("yes" if gb + 1.5 <= cap else "no" for cap in (24, 48, 80))
            lines.append(f"| {backbone.removeprefix('sapiens_').replace('_', '.')} | {setting} "
                         f"| {gb:.1f} | {source} | {fits} |")
    return "\n".join(lines) + "\n\nFit check (all measured points):\n" + "\n".join(
        f"- {c}" for c in check)


def available_gb() -> float:
    """MemAvailable of this machine."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / GB
    return 0.0


def measure(out: Path, margin_gb: float) -> list[dict[str, float]]:
    """Run the plan, skipping points predicted not to fit; results are appended to ``out``."""
    results = json.loads(out.read_text()) if out.exists() else []
    done = {(r["backbone"], r["setting"], r["depth"]) for r in results}
    for setting in SETTINGS:
        for backbone, depth in PLAN:
            if (backbone, setting, depth) in done:
                continue
            pts = [r for r in results if r["setting"] == setting]
            params, trainable = full_counts(backbone, setting)
            scale = depth / SIZES[backbone][1]
            guess = static_gb(params * scale, trainable * scale) + (
                fit(pts)[0] * depth * TOKENS * SIZES[backbone][0] + fit(pts)[1]
                if len(pts) >= 2 else 12.0)
            if guess > available_gb() - margin_gb:
                print(f"skip {backbone} depth {depth} {setting}: ~{guess:.1f} GB predicted",
                      flush=True)
                continue
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", backbone, setting, str(depth)],
                capture_output=True, text=True,
            )
            if proc.returncode != 0:
                print(f"failed {backbone} depth {depth} {setting}: {proc.stderr[-500:]}",
                      flush=True)
                continue
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            print(json.dumps(result), flush=True)
            results.append(result)
            out.write_text(json.dumps(results, indent=1))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3, metavar=("BACKBONE", "SETTING", "DEPTH"))
    parser.add_argument("--out", type=Path, default=Path("bench/memory.json"))
    parser.add_argument("--table", type=Path, help="only print the table of saved results")
    parser.add_argument("--margin-gb", type=float, default=2.0,
                        help="keep this much memory free when deciding what to measure")
    args = parser.parse_args()
    if args.worker:
        backbone, setting, depth = args.worker
        print(json.dumps(worker(backbone, setting, int(depth))))
        return
    results = json.loads(args.table.read_text()) if args.table else measure(args.out,
                                                                              args.margin_gb)
    print(table(results))


if __name__ == "__main__":
    main()
