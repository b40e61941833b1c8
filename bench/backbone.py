"""Forward time of a Sapiens backbone vs a plain timm VisionTransformer of the same shape.

Both models run in this one process, interleaved, at the same input size and precision, so the
ratio is robust to machine noise. Also measures this machine's matrix-multiply peak and reports
the fraction of it the backbone forward achieves.

    python bench/backbone.py                      # sapiens_0_3b at 1024x768, fp32 and bf16
    python bench/backbone.py --backbone sapiens_test --size 256 192 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from timm.models.vision_transformer import VisionTransformer

import sapiens_kit


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    return timed_pair(fn, None, repeats)[0]


def timed_pair(fn_a, fn_b, repeats: int) -> tuple[float, float]:
    """Median seconds of two functions, run alternately so background load hits both alike."""
    fns = [f for f in (fn_a, fn_b) if f is not None]
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    medians = [statistics.median(t) for t in times]
    return medians[0], (medians[1] if len(medians) > 1 else 0.0)


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Achieved FLOP/s of an n x n matmul (the machine's practical peak)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b, repeats)


def forward_flops(dim: int, depth: int, tokens: int) -> float:
    """Multiply-add FLOPs (x2) of the ViT forward: linears (12 D^2 per token) + attention."""
    linear = 2 * tokens * 12 * dim * dim
    attention = 2 * 2 * tokens * tokens * dim
    return depth * (linear + attention)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="sapiens_0_3b")
    parser.add_argument("--size", type=int, nargs=2, default=(1024, 768))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = tuple(args.size)

    ours = sapiens_kit.create_backbone(args.backbone, img_size=size).eval()
    plain = VisionTransformer(
        img_size=size, patch_size=16, embed_dim=ours.embed_dim, depth=ours.num_layers,
        num_heads=ours.blocks[0].attn.num_heads, class_token=False, global_pool="",
        num_classes=0,
    ).eval()
    x = torch.randn(1, 3, *size)
    tokens = (size[0] // 16) * (size[1] // 16)
    flops = forward_flops(ours.embed_dim, ours.num_layers, tokens)
    print(f"{args.backbone} at {size[0]}x{size[1]}, batch 1, {args.threads} threads, "
          f"torch {torch.__version__}, {flops / 1e12:.2f} TFLOP per forward")
    print(f"{'precision':<10}{'sapiens_kit s':>15}{'plain timm s':>15}{'ratio':>8}"
          f"{'matmul peak GFLOP/s':>22}{'of peak':>9}")
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        def run(model, dtype=dtype):
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype,
                                                        enabled=dtype != torch.float32):
                return model(x) if model is ours else model.forward_features(x)
        t_ours, t_plain = timed_pair(lambda: run(ours), lambda: run(plain), args.repeats)
        peak = matmul_peak(dtype)
        print(f"{name:<10}{t_ours:>15.2f}{t_plain:>15.2f}{t_ours / t_plain:>8.3f}"
              f"{peak / 1e9:>22.1f}{flops / t_ours / peak:>9.1%}")


if __name__ == "__main__":
    main()
