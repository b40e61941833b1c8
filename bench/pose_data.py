"""Samples per second of the pose training pipeline in one worker process (not a test).

One DataLoader worker runs JPEG decode + top-down UDP crop + the official augmentations + heatmap
encoding for each sample; this measures that chain in this process with torch and OpenCV limited
to one thread each, as in a worker, so ``num_workers ~= GPU samples/s / figure`` sizes a loader.

    python bench/pose_data.py                              # bundled demo, 1024x768, 3 sets
    python bench/pose_data.py --root /data/coco --ann annotations/coco_wholebody_val_v1.0.json \
        --img-dir val2017 --seconds 20
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from sapiens_kit.codecs import UDPHeatmap
from sapiens_kit.data.datasets import CocoKeypoints
from sapiens_kit.data.io import read_rgb
from sapiens_kit.data.keypoints import load_keypoint_set
from sapiens_kit.data.transforms.pose import TopdownTrainTransform
from sapiens_kit.utils.config import asset_path


def rate(fn, seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (after two warm-up calls)."""
    fn(), fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    """Print samples/s per set and a per-stage breakdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=asset_path("demo_pose"))
    parser.add_argument("--ann", default="annotations.json")
    parser.add_argument("--img-dir", default="images")
    parser.add_argument("--ann-keypoints", default="coco_wholebody133")
    parser.add_argument("--size", type=int, nargs=2, default=(1024, 768), metavar=("H", "W"))
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--sets", nargs="+", default=["coco17", "coco_wholebody133",
                                                       "goliath308"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    root, size = Path(args.root), tuple(args.size)
    heatmap_size = (size[0] // 4, size[1] // 4)
    print(f"pose training pipeline, one worker, input {size[0]}x{size[1]}, heatmaps "
          f"{heatmap_size[0]}x{heatmap_size[1]}, data {root / args.ann}")
    for name in args.sets:
        kset = load_keypoint_set(name)
        transform = TopdownTrainTransform(size, kset.flip_indices, kset.upper_body,
                                          kset.lower_body)
        for codec in (UDPHeatmap(size, heatmap_size), None):
            ds = CocoKeypoints(root / args.ann, root / args.img_dir, kset, args.ann_keypoints,
                               transform=transform, codec=codec, train=True)
            order = iter(np.random.default_rng(0).permutation(10**5) % len(ds))
            per_s = rate(lambda ds=ds, order=order: ds[int(next(order))], args.seconds)
            pixels = heatmap_size[0] * heatmap_size[1] if codec else 0
            mb = (kset.num_keypoints * pixels * 4 + 3 * size[0] * size[1]) / 2**20
            how = "heatmaps in worker" if codec else "encode_heatmaps=false"
            print(f"  {name:18s} K={kset.num_keypoints:3d} {how:21s}: {per_s:6.1f} samples/s "
                  f"({1000 / per_s:5.1f} ms/sample, {mb:5.1f} MiB/sample to the GPU)")
    # Where the time goes, for the COCO-WholeBody set.
    kset = load_keypoint_set("coco_wholebody133")
    ds = CocoKeypoints(root / args.ann, root / args.img_dir, kset, args.ann_keypoints, train=True)
    path, bbox = ds.paths[int(ds.image_ids[0])], ds.bboxes[0]
    kps = ds.keypoints[0]
    image = read_rgb(path)
    full = TopdownTrainTransform(size, kset.flip_indices, kset.upper_body, kset.lower_body)
    geo = TopdownTrainTransform(size, kset.flip_indices, kset.upper_body, kset.lower_body,
                                photometric_aug=False, blur_prob=0.0, dropout=False)
    crop = full(image, bbox, kps[:, :2], kps[:, 2])
    codec = UDPHeatmap(size, heatmap_size)
    stages = {
        "decode JPEG": lambda: read_rgb(path),
        "crop + geometric aug": lambda: geo(image, bbox, kps[:, :2], kps[:, 2]),
        "crop + all aug": lambda: full(image, bbox, kps[:, :2], kps[:, 2]),
        "heatmap encode (K=133)": lambda: codec.encode(torch.from_numpy(crop.keypoints),
                                                       torch.from_numpy(crop.visible)),
    }
    print("  breakdown (COCO-WholeBody, one sample):")
    for label, fn in stages.items():
        print(f"    {label:24s} {1000 / rate(fn, args.seconds / 2):6.1f} ms")


if __name__ == "__main__":
    main()
