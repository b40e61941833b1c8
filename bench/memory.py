"""Peak memory of one fine-tuning step of Sapiens v1 at 1024x768, batch 1, per memory setting.

Settings (segmentation task, official Goliath head with 768 channels, 28 classes, AdamW):

    fp32        full fine-tuning, float32
    bf16        full fine-tuning, bf16 autocast (weights, gradients and AdamW state stay fp32)
    bf16+ckpt   + per-block gradient checkpointing
    lora        + LoRA r=16 on attention and MLP linears (base weights frozen)
    frozen      + frozen backbone (head only)
    bf16+ckpt+head, lora+head
                bf16+ckpt and lora, with the head's stages checkpointed too
                (``model.head_checkpointing=true``)

Three figures:

* **measured**: a real step in a fresh process (AdamW state allocated by a dry step first, then
  forward, backward, clip, step): the process's peak resident memory above its after-import
  baseline. Only what fits this shared machine is run (shallow copies of a width through the
  ``depth`` override, 512x384 where 1024x768 does not fit).
* **derived**: the linear method. Weights and AdamW moments are exact (4 bytes per parameter,
  8 more per trainable one; gradients are not alive at the peak, which comes at the start of the
  backward pass). The rest scales with the number of tokens N, blocks L and width D and is
  fitted per setting by least squares on the measured points as ``N * (a * L * D + h)``; the fit
  residuals at the measured points check the method.
* **tracked**: PyTorch's ``MemTracker`` counting every live tensor of the same step run on fake
  tensors (no memory, no arithmetic), for every size. It checks the derived figures at sizes
  that cannot be measured here.

The "fits" columns use the larger of derived and tracked, plus 1.5 GB (CUDA context, allocator
slack). They assume a fused attention kernel (timm uses ``scaled_dot_product_attention``); an
implementation that stores the attention matrix needs ~1.2 GB more per block for 2B in fp32.

    python bench/memory.py --out bench/memory.json        # measure + track what is missing
    python bench/memory.py --table bench/memory.json      # table from saved results
    python bench/memory.py --worker sapiens_0_3b lora 24 1024 768 [--fake]   # one point
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SETTINGS = ("fp32", "bf16", "bf16+ckpt", "lora", "frozen", "bf16+ckpt+head", "lora+head")
SIZES = {"sapiens_0_3b": (1024, 24), "sapiens_0_6b": (1280, 32), "sapiens_1b": (1536, 40),
         "sapiens_2b": (1920, 48)}
TOKENS = (1024 // 16) * (768 // 16)
GB = 1024**3
#: Real measurements per setting, cheapest first: (backbone, depth, height, width).
PLAN = [("sapiens_0_3b", 2, 512, 384), ("sapiens_0_3b", 8, 512, 384),
        ("sapiens_0_6b", 4, 512, 384), ("sapiens_0_3b", 24, 1024, 768),
        ("sapiens_0_6b", 32, 1024, 768), ("sapiens_1b", 40, 1024, 768),
        ("sapiens_2b", 48, 1024, 768)]


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _NoHook:
    def remove(self) -> None:
        pass


def worker(backbone: str, setting: str, depth: int, size: tuple[int, int],
           fake: bool = False) -> dict[str, Any]:
    """One measurement in this process (call in a fresh one)."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    from sapiens_kit.tasks import SegmentationTask

    torch.manual_seed(0)
    base = rss_bytes()
    kind = setting.removesuffix("+head")
    with torch.device("meta") if fake else contextlib.nullcontext():
        task = SegmentationTask(
            backbone=backbone, img_size=size, num_classes=28,
            backbone_overrides={"depth": depth},
            head={"deconv_channels": [768] * 3, "conv_channels": [768] * 3, "dropout": 0.1},
            grad_checkpointing=kind in ("bf16+ckpt", "lora", "frozen"),
            head_checkpointing=setting.endswith("+head"),
            lora={"r": 16, "alpha": 32} if kind == "lora" else None,
            freeze_backbone=kind == "frozen",
        )
    mode = FakeTensorMode(allow_non_fake_inputs=True) if fake else contextlib.nullcontext()
    with mode:
        if fake:
            task = task.to_empty(device="cpu")
        task.train()
        optimizer = task.configure_optimizers()["optimizer"]
        trainable = [p for p in task.parameters() if p.requires_grad]
        for p in task.parameters():  # MemTracker hooks every parameter; frozen ones refuse hooks
            if not p.requires_grad:
                p.register_hook = p.register_post_accumulate_grad_hook = (  # type: ignore
                    lambda *a, **k: _NoHook())
        for p in trainable:  # dry step: allocate the AdamW state before measuring
            p.grad = torch.zeros_like(p)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        image = torch.randint(0, 256, (1, 3, *size), dtype=torch.uint8)
        mask = torch.randint(0, 28, (1, *size))
        start = time.perf_counter()
        tracker = MemTracker()
        tracker.track_external(task, optimizer)
        with tracker:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting != "fp32"):
                loss = task.loss_fn(task(image), mask)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0, foreach=True)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        tracked = tracker.get_tracker_snapshot("peak")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    parts = {str(k).rsplit(".", 1)[-1].lower(): v / GB for dev in tracked.values()
             for k, v in dev.items()}
    return {
        "backbone": backbone, "setting": setting, "depth": depth, "size": list(size),
        "tokens": (size[0] // 16) * (size[1] // 16), "dim": SIZES[backbone][0],
        "params": sum(p.numel() for p in task.parameters()),
        "trainable": sum(p.numel() for p in trainable),
        "peak_gb": None if fake else (peak - base) / GB, "tracked_gb": parts.pop("total"),
        "tracked_parts": parts, "fake": fake, "step_s": time.perf_counter() - start,
    }


def static_gb(params: float, trainable: float) -> float:
    """fp32 weights + AdamW moments (gradients are not alive at the peak)."""
    return (4 * params + 8 * trainable) / GB


def full_counts(backbone: str, setting: str) -> tuple[float, float]:
    """(parameters, trainable parameters) of the full-depth task, from the module definitions."""
    setting = setting.removesuffix("+head")
    dim, depth = SIZES[backbone]
    block = 12 * dim * dim + 13 * dim
    vit = depth * block + 16 * 16 * 3 * dim + dim + TOKENS * dim + 2 * dim
    head = 16 * dim * 768 + 2 * 16 * 768 * 768 + 3 * (768 * 768 + 768) + 768 * 28 + 28
    lora = depth * 16 * (dim + 3 * dim + dim + dim + dim + 4 * dim + 4 * dim + dim)
    total = vit + head + (lora if setting == "lora" else 0)
    trainable = {"lora": lora + head, "frozen": head}.get(setting, vit + head)
    return total, trainable


def fit(points: list[dict[str, Any]]) -> tuple[float, float]:
    """Least-squares ``(a, h)`` of ``measured - static = N * (a * L * D + h)`` (GB)."""
    rows = [(p["tokens"] * p["depth"] * p["dim"], p["tokens"],
             p["peak_gb"] - static_gb(p["params"], p["trainable"])) for p in points]
    if len(rows) == 1:
        return 0.0, rows[0][2] / rows[0][1]
    sxx = sum(x * x for x, _, _ in rows)
    sxn = sum(x * n for x, n, _ in rows)
    snn = sum(n * n for _, n, _ in rows)
    sxy = sum(x * y for x, _, y in rows)
    sny = sum(n * y for _, n, y in rows)
    det = sxx * snn - sxn * sxn
    if abs(det) < 1e-9 * sxx * snn:
        return 0.0, sny / snn
    return (sxy * snn - sny * sxn) / det, (sxx * sny - sxn * sxy) / det


def derive(a: float, h: float, params: float, trainable: float, depth: int, dim: int,
           tokens: int) -> float:
    """Peak GB of the linear model."""
    return static_gb(params, trainable) + tokens * (a * depth * dim + h)


def table(results: list[dict[str, Any]]) -> str:
    """Markdown table at 1024x768 and the check of the method at every measured point."""
    lines = ["| size | setting | measured GB | derived GB | tracked GB | fits 24 / 48 / 80 GB |",
             "|---|---|---|---|---|---|"]
    check = []
    for setting in SETTINGS:
        real = [r for r in results if r["setting"] == setting and not r["fake"]]
        a, h = fit(real) if real else (0.0, 0.0)
        for p in real:
            d = derive(a, h, p["params"], p["trainable"], p["depth"], p["dim"], p["tokens"])
            t = p.get("tracked_gb")
            check.append(
                f"{setting}, {p['backbone']} depth {p['depth']} at {p['size'][0]}x{p['size'][1]}"
                f": measured {p['peak_gb']:.2f}, derived {d:.2f} ({d / p['peak_gb'] - 1:+.0%})"
                + (f", tracked {t:.2f} ({t / p['peak_gb'] - 1:+.0%})" if t else ""))
        for backbone, (dim, depth) in SIZES.items():
            same = [r for r in results if (r["backbone"], r["setting"], r["depth"],
                                           r["tokens"]) == (backbone, setting, depth, TOKENS)]
            measured = next((r["peak_gb"] for r in same if not r["fake"]), None)
            tracked = next((r["tracked_gb"] for r in same if r.get("tracked_gb")), None)
            params, trainable = full_counts(backbone, setting)
            derived = derive(a, h, params, trainable, depth, dim, TOKENS) if real else None
            best = max(x for x in (measured, derived, tracked, 0.0) if x is not None)
            fits = " / ".join("yes" if best + 1.5 <= cap else "no" for cap in (24, 48, 80))
            cells = [f"{x:.1f}" if x is not None else "-" for x in (measured, derived, tracked)]
            lines.append(f"| {backbone.removeprefix('sapiens_').replace('_', '.').upper()} | "
                         f"{setting} | {' | '.join(cells)} | {fits} |")
    return "\n".join(lines) + "\n\nCheck at the measured points:\n" + "\n".join(
        f"- {c}" for c in check)


def available_gb() -> float:
    """MemAvailable of this machine."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / GB
    return 0.0


def run_worker(args: list[str]) -> dict[str, Any] | None:
    proc = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        print(f"failed {args}: {proc.stderr[-800:]}", flush=True)
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    return result


def measure(out: Path, margin_gb: float, max_gb: float) -> list[dict[str, Any]]:
    """Real points that fit (guarded by a prediction), then fake-tensor tracking of every full
    size; results are appended to ``out`` as they come (a rerun continues)."""
    results = json.loads(out.read_text()) if out.exists() else []
    for r in results:
        r.setdefault("fake", False)

    def have(backbone: str, setting: str, depth: int, size: list[int], fake: bool) -> bool:
        return any((r["backbone"], r["setting"], r["depth"], r["size"], r["fake"]) ==
                   (backbone, setting, depth, size, fake) for r in results)

    for setting in SETTINGS:
        for backbone, depth, height, width in PLAN:
            if have(backbone, setting, depth, [height, width], False):
                continue
            real = [r for r in results if r["setting"] == setting and not r["fake"]]
            params, trainable = full_counts(backbone, setting)
            scale = depth / SIZES[backbone][1]
            a, h = fit(real) if real else (0.0, 9.0 / TOKENS)
            guess = 1.15 * derive(a, h, params * scale, trainable * scale, depth,
                                  SIZES[backbone][0], (height // 16) * (width // 16))
            if guess > min(max_gb, available_gb() - margin_gb):
                print(f"skip {backbone} depth {depth} {height}x{width} {setting}: "
                      f"~{guess:.1f} GB", flush=True)
                continue
            result = run_worker([backbone, setting, str(depth), str(height), str(width)])
            if result:
                results.append(result)
                out.write_text(json.dumps(results, indent=1))
    for r in results:  # older measurements without the tracker: track the same step on fakes
        if not r["fake"] and not r.get("tracked_gb"):
            tracked = run_worker([r["backbone"], r["setting"], str(r["depth"]),
                                  str(r["size"][0]), str(r["size"][1]), "--fake"])
            if tracked:
                r["tracked_gb"], r["tracked_parts"] = tracked["tracked_gb"], tracked[
                    "tracked_parts"]
                out.write_text(json.dumps(results, indent=1))
    for setting in SETTINGS:
        for backbone, (_, depth) in SIZES.items():
            if any((r["backbone"], r["setting"], r["depth"], r["tokens"]) ==
                   (backbone, setting, depth, TOKENS) for r in results):
                continue
            result = run_worker([backbone, setting, str(depth), "1024", "768", "--fake"])
            if result:
                results.append(result)
                out.write_text(json.dumps(results, indent=1))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=5,
                        metavar=("BACKBONE", "SETTING", "DEPTH", "HEIGHT", "WIDTH"))
    parser.add_argument("--fake", action="store_true", help="worker: track fake tensors only")
    parser.add_argument("--out", type=Path, default=Path("bench/memory.json"))
    parser.add_argument("--table", type=Path, help="only print the table of saved results")
    parser.add_argument("--margin-gb", type=float, default=6.0,
                        help="leave this much of the machine's available memory to others")
    parser.add_argument("--max-gb", type=float, default=8.0,
                        help="largest predicted peak to measure for real")
    args = parser.parse_args()
    if args.worker:
        backbone, setting, depth, height, width = args.worker
        print(json.dumps(worker(backbone, setting, int(depth), (int(height), int(width)),
                                args.fake)))
        return
    results = (json.loads(args.table.read_text()) if args.table
               else measure(args.out, args.margin_gb, args.max_gb))
    print(table(results))


if __name__ == "__main__":
    main()
