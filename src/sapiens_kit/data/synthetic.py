"""Seeded synthetic scenes with analytic depth and surface normals, in the dense-folder layout.

Each scene is a stick figure made of spheres (head) and capsules (torso, limbs) in a random pose,
ray-cast through a pinhole camera and shaded with a Lambertian light over a textured background.
Depth and normals are exact (closed-form ray/primitive intersections), so the files are good test
fixtures and a small offline demo set. The renderer returns named layers (:func:`render_scene`);
each dense target (:mod:`sapiens_kit.data.targets`) takes its values from them and writes its own
folder. Written layout with the built-in targets (the one :class:`DenseFolder` reads)::

    <out>/images/<stem>.png   RGB photo-like render (figure on a random background)
    <out>/depth/<stem>.npy    float32 (H, W) camera Z depth in metres; 0 outside the figure
    <out>/normal/<stem>.npy   float32 (H, W, 3) unit normals, kit axes (X right, Y up, Z towards
                              the camera); 0 outside the figure
    <out>/mask/<stem>.png     uint8 (H, W) 255 = figure, 0 = background

Command line: ``python -m sapiens_kit.data.synthetic OUT --n 8 [--size 256 192] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sapiens_kit.data.targets import DenseTarget, TargetSpec, get_target, list_targets

#: Parts of the figure: (name, radius in metres, albedo group).
_SKIN, _SHIRT, _TROUSERS = 0, 1, 2


@dataclass(frozen=True)
class _Primitive:
    """A sphere (``b is None``) or a capsule from ``a`` to ``b`` (camera coordinates, metres)."""

    a: np.ndarray
    b: np.ndarray | None
    radius: float
    group: int


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation of ``v`` about the unit ``axis``."""
    c, s = np.cos(angle), np.sin(angle)
    return v * c + np.cross(axis, v) * s + axis * np.dot(axis, v) * (1 - c)


def _figure(rng: np.random.Generator) -> list[_Primitive]:
    """A random human-like pose in OpenCV camera axes (X right, Y down, Z forward)."""
    up = np.array([0.0, -1.0, 0.0])
    yaw = rng.uniform(-1.0, 1.0)
    right = _rotate(np.array([1.0, 0.0, 0.0]), up, yaw)
    forward = np.cross(right, up)
    lean = rng.uniform(-0.15, 0.15)
    up = _rotate(up, forward, lean)
    right = _rotate(right, forward, lean)
    pelvis = np.array([rng.uniform(-0.25, 0.25), rng.uniform(0.0, 0.15), rng.uniform(2.6, 3.4)])
    chest = pelvis + up * 0.5
    head = chest + up * rng.uniform(0.3, 0.34)
    parts = [
        _Primitive(pelvis, chest, rng.uniform(0.13, 0.17), _SHIRT),
        _Primitive(head, None, rng.uniform(0.1, 0.12), _SKIN),
        _Primitive(chest, chest + up * 0.16, 0.05, _SKIN),
    ]

    def limb(origin: np.ndarray, side: float, lengths: tuple[float, float], radius: float,
             groups: tuple[int, int], swing: float, spread: float, bend: float) -> None:
        down = _rotate(-up, forward, side * spread)
        down = _rotate(down, right, swing)
        mid = origin + down * lengths[0]
        lower = _rotate(down, right, bend)
        parts.append(_Primitive(origin, mid, radius, groups[0]))
        parts.append(_Primitive(mid, mid + lower * lengths[1], radius * 0.85, groups[1]))

    for side in (-1.0, 1.0):
        shoulder = chest + right * side * 0.2
        limb(shoulder, side, (0.3, 0.27), 0.05, (_SHIRT, _SKIN), rng.uniform(-0.9, 0.9),
             rng.uniform(0.1, 1.2), rng.uniform(-1.4, 0.0))
        hip = pelvis + right * side * 0.1
        limb(hip, side, (0.45, 0.43), 0.07, (_TROUSERS, _TROUSERS), rng.uniform(-0.5, 0.5),
             rng.uniform(0.0, 0.3), rng.uniform(0.0, 0.9))
    return parts


def _hit_sphere(
    dirs: np.ndarray, centre: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest ``t`` (inf on a miss) and outward normals for rays ``t * dirs`` from the origin."""
    a = (dirs * dirs).sum(-1)
    b = -2 * dirs @ centre
    c = centre @ centre - radius**2
    disc = b * b - 4 * a * c
    t = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
    t = np.where(t > 0, t, np.inf)
    normals = (dirs * np.where(np.isfinite(t), t, 0)[..., None] - centre) / radius
    return t, normals


def _hit_capsule(dirs: np.ndarray, p: _Primitive) -> tuple[np.ndarray, np.ndarray]:
    """A capsule is the union of its cylinder side and its two end spheres."""
    assert p.b is not None
    axis = p.b - p.a
    length = float(np.linalg.norm(axis))
    axis = axis / length
    w = -p.a
    d_perp = dirs - (dirs @ axis)[..., None] * axis
    w_perp = w - (w @ axis) * axis
    a = (d_perp * d_perp).sum(-1)
    b = 2 * d_perp @ w_perp
    c = w_perp @ w_perp - p.radius**2
    disc = b * b - 4 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where((disc >= 0) & (a > 1e-12), (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a),
                     np.inf)
    points = dirs * np.where(np.isfinite(t), t, 0)[..., None]
    h = (points - p.a) @ axis
    t = np.where((t > 0) & (h >= 0) & (h <= length), t, np.inf)
    normals = (points - p.a - h[..., None] * axis) / p.radius
    for centre in (p.a, p.b):
        ts, ns = _hit_sphere(dirs, centre, p.radius)
        closer = ts < t
        t = np.where(closer, ts, t)
        normals = np.where(closer[..., None], ns, normals)
    return t, normals


def _background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A smooth random gradient with low-frequency noise and a few flat rectangles."""
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    angle = rng.uniform(0, np.pi)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height + 1) / 2
    img = c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]
    noise = cv2.resize(rng.normal(0, 25, (6, 5)).astype(np.float32), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    img = img + noise[..., None]
    for _ in range(int(rng.integers(1, 5))):
        y0, x0 = int(rng.integers(0, height)), int(rng.integers(0, width))
        y1, x1 = y0 + int(rng.integers(height // 10, height // 3)), x0 + int(
            rng.integers(width // 10, width // 3))
        img[y0:y1, x0:x1] = rng.uniform(0, 255, 3)
    return img


def render_scene(
    rng: np.random.Generator, size: tuple[int, int] = (256, 192)
) -> dict[str, np.ndarray]:
    """Render one scene.

    Returns:
        ``image`` uint8 (H, W, 3) RGB, ``depth`` float32 (H, W) (0 = background), ``normal``
        float32 (H, W, 3) in kit axes (0 = background), ``albedo`` float32 (H, W, 3) the
        unshaded surface colour in ``[0, 1]`` (0 = background) and ``mask`` uint8 (H, W) 0/255.
    """
    height, width = size
    focal = 1.45 * height
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    dirs = np.stack([(u + 0.5 - width / 2) / focal, (v + 0.5 - height / 2) / focal,
                     np.ones_like(u)], -1)
    depth = np.full(size, np.inf)
    normal = np.zeros((*size, 3))
    group = np.full(size, -1)
    for part in _figure(rng):
        if part.b is None:
            t, n = _hit_sphere(dirs, part.a, part.radius)
        else:
            t, n = _hit_capsule(dirs, part)
        closer = t < depth
        depth = np.where(closer, t, depth)
        normal = np.where(closer[..., None], n, normal)
        group = np.where(closer, part.group, group)
    fg = np.isfinite(depth)
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
    # OpenCV camera axes (Y down, Z forward) -> kit axes (Y up, Z towards the camera).
    normal *= np.array([1.0, -1.0, -1.0])
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(0.0, 0.7), 1.0])
    light /= np.linalg.norm(light)
    shade = 0.3 + 0.7 * np.clip(normal @ light, 0, 1)
    albedo = np.stack([rng.uniform(60, 250, 3) for _ in range(3)])
    texture = 1 + 0.08 * cv2.resize(rng.normal(0, 1, (height // 4, width // 4)),
                                    (width, height), interpolation=cv2.INTER_LINEAR)
    figure = albedo[np.clip(group, 0, 2)] * (shade * texture)[..., None]
    image = np.where(fg[..., None], figure, _background(rng, size))
    image = image + rng.normal(0, 3, image.shape)
    return {
        "image": np.clip(image, 0, 255).round().astype(np.uint8),
        "depth": np.where(fg, depth, 0).astype(np.float32),
        "normal": np.where(fg[..., None], normal, 0).astype(np.float32),
        "albedo": np.where(fg[..., None], albedo[np.clip(group, 0, 2)] / 255, 0).astype(
            np.float32),
        "mask": (fg * 255).astype(np.uint8),
    }


def _targets(targets: Sequence[TargetSpec] | None) -> list[DenseTarget]:
    """The target objects to write: the given ones, else every registered target."""
    return [get_target(t) for t in (list_targets() if targets is None else targets)]


def generate(
    out: str | Path, n: int = 8, size: tuple[int, int] = (256, 192), seed: int = 0,
    prefix: str = "synth", targets: Sequence[TargetSpec] | None = None,
) -> Path:
    """Write ``n`` seeded scenes to ``out`` in the dense-folder layout and return ``out``.

    ``targets`` (keys or :class:`~sapiens_kit.data.targets.DenseTarget` objects; default: all
    registered) each write the scene layer they take (:meth:`DenseTarget.from_scene`) into their
    folder; targets the renderer has no layer for are left out.
    """
    out = Path(out)
    chosen = _targets(targets)
    for sub in ("images", "mask"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        scene = render_scene(rng, (int(size[0]), int(size[1])))
        stem = f"{prefix}_{i:04d}"
        cv2.imwrite(str(out / "images" / f"{stem}.png"),
                    cv2.cvtColor(scene["image"], cv2.COLOR_RGB2BGR))
        for target in chosen:
            values = target.from_scene(scene)
            if values is not None:
                folder = out / target.folder_names[0]
                folder.mkdir(exist_ok=True)
                target.write(folder / stem, values)
        cv2.imwrite(str(out / "mask" / f"{stem}.png"), scene["mask"])
    return out


def cache_root() -> Path:
    """``$SAPIENS_KIT_CACHE``, else ``$XDG_CACHE_HOME/sapiens_kit``, else ``~/.cache/...``."""
    if os.environ.get("SAPIENS_KIT_CACHE"):
        return Path(os.environ["SAPIENS_KIT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sapiens_kit"


def ensure_demo(
    cache_dir: str | Path | None = None, n_train: int = 16, n_val: int = 4,
    size: tuple[int, int] = (256, 192), seed: int = 0,
    targets: Sequence[TargetSpec] | None = None,
) -> Path:
    """Generate (once) a demo set with ``train/`` and ``val/`` splits and return its folder.

    ``targets`` as for :func:`generate` (default: all registered). The folder name encodes the
    settings, and it is written to a temporary sibling then renamed, so concurrent runs never
    see a half-written set.
    """
    chosen = _targets(targets)
    settings = {"n_train": n_train, "n_val": n_val, "size": list(size), "seed": seed, "v": 1,
                "targets": sorted(t.key for t in chosen)}
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    parent = Path(cache_dir).expanduser() if cache_dir else cache_root() / "synthetic"
    final = parent / f"demo_{key}"
    if (final / "settings.json").is_file():
        return final
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp_demo_", dir=parent))
    try:
        generate(tmp / "train", n_train, size, seed, prefix="train", targets=chosen)
        generate(tmp / "val", n_val, size, seed + 1, prefix="val", targets=chosen)
        (tmp / "settings.json").write_text(json.dumps(settings))
        try:
            tmp.rename(final)
        except OSError:
            if not (final / "settings.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--n", type=int, default=8, help="number of scenes")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 192), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = generate(args.out, args.n, tuple(args.size), args.seed)
    print(f"wrote {args.n} scenes to {out}")


if __name__ == "__main__":
    main()
