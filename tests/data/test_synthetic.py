"""The synthetic depth/normal generator: layout, determinism and geometric consistency."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sapiens_kit.data import synthetic


def _backproject(depth: np.ndarray, focal: float) -> np.ndarray:
    height, width = depth.shape
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([(u + 0.5 - width / 2) / focal * depth,
                     (v + 0.5 - height / 2) / focal * depth, depth], -1)


def test_layout_and_determinism(tmp_path: Path) -> None:
    a = synthetic.generate(tmp_path / "a", n=2, size=(64, 48), seed=3)
    b = synthetic.generate(tmp_path / "b", n=2, size=(64, 48), seed=3)
    for sub, suffix in (("images", "png"), ("depth", "npy"), ("normal", "npy"), ("mask", "png")):
        files = sorted((a / sub).iterdir())
        assert [f.name for f in files] == [f"synth_000{i}.{suffix}" for i in range(2)]
        for f in files:
            assert f.read_bytes() == (b / sub / f.name).read_bytes()
    img = cv2.imread(str(a / "images" / "synth_0000.png"))
    depth = np.load(a / "depth" / "synth_0000.npy")
    normal = np.load(a / "normal" / "synth_0000.npy")
    mask = cv2.imread(str(a / "mask" / "synth_0000.png"), cv2.IMREAD_UNCHANGED)
    assert img.shape == (64, 48, 3) and depth.shape == (64, 48) and normal.shape == (64, 48, 3)
    assert depth.dtype == np.float32 and normal.dtype == np.float32 and mask.dtype == np.uint8
    fg = mask > 0
    assert 0.03 < fg.mean() < 0.6
    assert (depth[fg] > 0).all() and (depth[~fg] == 0).all()
    np.testing.assert_allclose(np.linalg.norm(normal[fg], axis=-1), 1, atol=1e-5)
    assert (normal[~fg] == 0).all()
    other = synthetic.generate(tmp_path / "c", n=1, size=(64, 48), seed=4)
    assert not np.array_equal(np.load(other / "depth" / "synth_0000.npy"), depth)


def test_normals_agree_with_depth_geometry() -> None:
    """Normals from finite differences of the back-projected depth match the analytic ones, and
    face the camera (kit axes: Z towards the camera)."""
    size = (256, 192)
    scene = synthetic.render_scene(np.random.default_rng(0), size)
    points = _backproject(scene["depth"].astype(np.float64), 1.45 * size[0])
    dx = points[1:-1, 2:] - points[1:-1, :-2]
    dy = points[2:, 1:-1] - points[:-2, 1:-1]
    # dx x dy points away from the camera in OpenCV axes; negate for the outward normal, then
    # convert OpenCV axes (Y down, Z forward) to kit axes (Y up, Z towards the camera).
    est = -np.cross(dx, dy) * np.array([1.0, -1.0, -1.0])
    est /= np.maximum(np.linalg.norm(est, axis=-1, keepdims=True), 1e-12)
    fg = scene["mask"] > 0
    interior = cv2.erode(fg.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)[1:-1, 1:-1]
    cos = (est * scene["normal"][1:-1, 1:-1]).sum(-1)[interior]
    assert np.median(np.degrees(np.arccos(np.clip(cos, -1, 1)))) < 3.0
    # Every visible normal faces its camera ray: n . d < 0 (d in kit axes).
    height, width = size
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    focal = 1.45 * height
    rays = np.stack([(u + 0.5 - width / 2) / focal, -(v + 0.5 - height / 2) / focal,
                     -np.ones_like(u)], -1)
    assert ((scene["normal"] * rays).sum(-1)[fg] < 1e-6).all()


def test_sphere_hit_is_exact() -> None:
    dirs = np.array([[0.0, 0.0, 1.0], [0.1, 0.0, 1.0], [5.0, 0.0, 1.0]])
    t, n = synthetic._hit_sphere(dirs, np.array([0.0, 0.0, 3.0]), 1.0)
    assert t[0] == pytest.approx(2.0) and np.allclose(n[0], [0, 0, -1])
    hit = dirs[1] * t[1]
    assert np.linalg.norm(hit - [0, 0, 3]) == pytest.approx(1.0)
    assert np.isinf(t[2])


def test_cli_and_demo_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    synthetic.main([str(tmp_path / "cli"), "--n", "2", "--size", "32", "24", "--seed", "1"])
    assert "wrote 2 scenes" in capsys.readouterr().out
    assert len(list((tmp_path / "cli" / "depth").glob("*.npy"))) == 2
    root = synthetic.ensure_demo(tmp_path / "cache", n_train=2, n_val=1, size=(32, 24))
    assert len(list((root / "train" / "images").iterdir())) == 2
    assert len(list((root / "val" / "normal").iterdir())) == 1
    mtime = (root / "settings.json").stat().st_mtime_ns
    assert synthetic.ensure_demo(tmp_path / "cache", 2, 1, (32, 24)) == root
    assert (root / "settings.json").stat().st_mtime_ns == mtime
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".tmp")]
