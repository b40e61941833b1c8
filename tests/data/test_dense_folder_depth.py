"""Depth folders: formats, up-front validation, bad input, transforms and the data module."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sapiens_kit.data import DenseFolderDataModule
from sapiens_kit.data.datasets.dense_folder import DenseFolder, read_depth
from sapiens_kit.data.io import DataFileError
from sapiens_kit.data.synthetic import generate
from sapiens_kit.data.transforms.dense import DenseEvalTransform, DenseTrainTransform


def _folder(root: Path, depths: dict[str, np.ndarray], masks: dict[str, np.ndarray] | None = None,
            suffix: str = ".npy") -> Path:
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    for stem, depth in depths.items():
        cv2.imwrite(str(root / "images" / f"{stem}.png"),
                    np.full((*depth.shape[:2], 3), 128, np.uint8))
        if suffix == ".npy":
            np.save(root / "depth" / f"{stem}.npy", depth)
        else:
            cv2.imwrite(str(root / "depth" / f"{stem}{suffix}"), depth)
    if masks is not None:
        (root / "mask").mkdir()
        for stem, mask in masks.items():
            cv2.imwrite(str(root / "mask" / f"{stem}.png"), mask.astype(np.uint8) * 255)
    return root


def test_synthetic_folder_samples(tmp_path: Path) -> None:
    root = generate(tmp_path / "syn", n=3, size=(32, 24))
    ds = DenseFolder(root, "depth")
    assert len(ds) == 3 and not ds.reports and not ds.skipped
    s = ds[0]
    assert s["image"].dtype == torch.uint8 and s["image"].shape == (3, 32, 24)
    assert s["depth"].dtype == torch.float32 and s["depth"].shape == (1, 32, 24)
    assert s["valid_mask"].dtype == torch.bool and s["valid_mask"].shape == (32, 24)
    mask = cv2.imread(str(root / "mask" / "synth_0000.png"), cv2.IMREAD_UNCHANGED) > 0
    assert torch.equal(s["valid_mask"], torch.from_numpy(mask))
    np.testing.assert_array_equal(s["depth"][0].numpy(), np.load(root / "depth/synth_0000.npy"))
    assert s["meta"]["orig_size"] == (32, 24)
    assert s["meta"]["target_path"].endswith("synth_0000.npy")


def test_png16_depth_scale_and_official_folder_names(tmp_path: Path) -> None:
    mm = np.array([[0, 1500], [2500, 65535]], np.uint16)
    root = _folder(tmp_path / "d", {"a": mm}, suffix=".png")
    np.testing.assert_allclose(read_depth(root / "depth" / "a.png", scale=0.001),
                               mm.astype(np.float32) * 0.001)
    (root / "depth").rename(root / "depths")  # the official DepthGeneralDataset spelling
    (root / "images").rename(root / "rgb")
    s = DenseFolder(root, "depth", depth_scale=0.001)[0]
    np.testing.assert_allclose(s["depth"][0].numpy(), mm * np.float32(0.001))
    assert s["valid_mask"].tolist() == [[False, True], [True, True]]


def test_exr_depth(tmp_path: Path) -> None:
    openexr = pytest.importorskip("OpenEXR")
    depth = np.random.default_rng(0).uniform(1, 3, (6, 5)).astype(np.float32)
    root = _folder(tmp_path / "d", {"a": depth})
    (root / "depth" / "a.npy").unlink()
    header = {"compression": openexr.ZIP_COMPRESSION, "type": openexr.scanlineimage}
    with openexr.File(header, {"Z": depth}) as f:
        f.write(str(root / "depth" / "a.exr"))
    np.testing.assert_array_equal(DenseFolder(root, "depth")[0]["depth"][0].numpy(), depth)


def test_invalid_pixels_are_masked_counted_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    depth = np.full((4, 5), 2.0, np.float32)
    depth[0, 0], depth[0, 1], depth[1, 0], depth[1, 1] = np.nan, np.inf, -1.0, 0.0
    mask = np.ones((4, 5), bool)
    mask[3] = False  # background row: anything there is not counted
    depth[3, 0] = np.nan
    root = _folder(tmp_path / "d", {"a": depth, "b": np.full((4, 5), 3.0, np.float32)},
                   {"a": mask, "b": np.ones((4, 5), bool)})
    with caplog.at_level(logging.WARNING):
        ds = DenseFolder(root, "depth")
    report = ds.reports[str(root / "depth" / "a.npy")]
    assert (report.nonfinite, report.negative, report.foreground_without_depth) == (2, 1, 1)
    assert len(ds.reports) == 1
    assert "a.npy: 2 nonfinite, 1 negative, 1 foreground without depth" in caplog.text
    s = ds[0]
    expected = mask & np.isfinite(depth) & (depth > 0)
    assert torch.equal(s["valid_mask"], torch.from_numpy(expected))
    bad = torch.from_numpy(~(np.isfinite(depth) & (depth > 0)))
    assert torch.isfinite(s["depth"]).all() and (s["depth"][0][bad] == 0).all()


def test_all_background_sample_skipped_or_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = np.full((4, 4), 2.0, np.float32)
    root = _folder(tmp_path / "d", {"a": good, "b": np.full((4, 4), np.nan, np.float32),
                                    "c": good}, {"a": np.ones((4, 4)), "b": np.ones((4, 4)),
                                                  "c": np.zeros((4, 4))})
    with caplog.at_level(logging.WARNING):
        ds = DenseFolder(root, "depth")
    assert len(ds) == 1 and [p.name for p in ds.skipped] == ["b.npy", "c.npy"]
    assert "skipping 2 samples with no foreground pixel: b.npy, c.npy" in caplog.text
    with pytest.raises(DataFileError, match=r"b\.npy: no valid foreground pixel"):
        DenseFolder(root, "depth", empty="error")


@pytest.mark.parametrize("bad", ["size", "mask_size", "ndim", "unpaired", "no_mask", "junk"])
def test_files_that_can_never_work_raise_naming_the_file(tmp_path: Path, bad: str) -> None:
    good = np.full((4, 4), 2.0, np.float32)
    root = _folder(tmp_path / "d", {"a": good, "b": good},
                   {"a": np.ones((4, 4)), "b": np.ones((4, 4))})
    if bad == "size":
        np.save(root / "depth" / "b.npy", np.ones((5, 4), np.float32))
        match = r"b\.npy: depth size \(5, 4\) differs from its image .*b\.png \(4, 4\)"
    elif bad == "mask_size":
        cv2.imwrite(str(root / "mask" / "b.png"), np.ones((3, 4), np.uint8))
        match = r"b\.png: mask size \(3, 4\) differs from its image"
    elif bad == "ndim":
        np.save(root / "depth" / "b.npy", np.ones((4, 4, 3), np.float32))
        match = r"b\.npy: depth must be a single-channel"
    elif bad == "unpaired":
        (root / "depth" / "b.npy").unlink()
        match = r"b\.png: has no depth file"
    elif bad == "no_mask":
        (root / "mask" / "b.png").unlink()
        match = r"b\.png: has no mask"
    else:
        (root / "depth" / "b.npy").write_bytes(b"not numpy")
        match = r"b\.npy: unreadable \.npy"
    with pytest.raises(DataFileError, match=match):
        DenseFolder(root, "depth")


def test_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="does not exist"):
        DenseFolder(tmp_path / "nope", "depth")
    (tmp_path / "x" / "images").mkdir(parents=True)
    with pytest.raises(DataFileError, match="expected sub-folders images/ and depth/"):
        DenseFolder(tmp_path / "x", "depth")
    with pytest.raises(ValueError, match="target"):
        DenseFolder(tmp_path / "x", "disparity")  # type: ignore[arg-type]


def test_train_transform_shapes_rotation_and_flip() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)
    depth = rng.uniform(1, 2, (40, 30)).astype(np.float32)
    valid = np.ones((40, 30), bool)
    tf = DenseTrainTransform((32, 24), "depth", rotate_limit=60, rotate_prob=1.0, flip_prob=0.0,
                             photometric_distortion=False)
    seen_invalid = False
    for _ in range(4):
        img, tgt, val = tf(image, depth, valid)
        assert img.shape == (32, 24, 3) and tgt.shape == (32, 24) and val.shape == (32, 24)
        assert val.dtype == bool and tgt.dtype == np.float32
        # Nearest resampling: every valid target value is an original depth value.
        assert np.isin(tgt[val], depth).all()
        seen_invalid |= bool((~val).any())
    assert seen_invalid  # rotation pads with invalid pixels


def test_eval_transform_keeps_targets() -> None:
    image = np.zeros((40, 30, 3), np.uint8)
    depth = np.ones((40, 30), np.float32)
    img, tgt, _ = DenseEvalTransform((32, 24))(image, depth, depth > 0)
    assert img.shape == (32, 24, 3) and tgt is depth


def test_datamodule_splits_and_demo(tmp_path: Path) -> None:
    root = tmp_path / "data"
    generate(root / "train", n=3, size=(32, 24), seed=0)
    generate(root / "val", n=2, size=(40, 30), seed=1)
    dm = DenseFolderDataModule(str(root), "depth", img_size=(32, 24), batch_size=2)
    dm.setup("fit")
    assert len(dm.train_dataset) == 3 and len(dm.val_dataset) == 2
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 24) and batch["depth"].shape == (2, 1, 32, 24)
    val = next(iter(dm.val_dataloader()))
    assert val["image"].shape == (2, 3, 32, 24) and val["depth"].shape == (2, 1, 40, 30)
    assert dm.task_kwargs() == {}
    demo = DenseFolderDataModule(None, "depth", img_size=(32, 24), demo_size=(2, 1),
                                 demo_image_size=(32, 24), cache_dir=str(tmp_path / "cache"))
    demo.setup("fit")
    assert len(demo.train_dataset) == 2 and len(demo.val_dataset) == 1
    assert str(demo.root).startswith(str(tmp_path / "cache"))
    with pytest.raises(DataFileError, match="does not exist"):
        DenseFolderDataModule(str(tmp_path / "missing"), "depth")
