"""Normal folders: PNG/NPY decoding, re-normalisation, axis flips, bad input, flip negates X."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sapiens_kit.data import DenseFolderDataModule
from sapiens_kit.data.datasets.dense_folder import DenseFolder, read_normal
from sapiens_kit.data.io import DataFileError
from sapiens_kit.data.synthetic import generate
from sapiens_kit.data.transforms.dense import DenseTrainTransform, hflip_dense


def _folder(root: Path, normals: dict[str, np.ndarray], masks: dict[str, np.ndarray] | None = None
            ) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "normal").mkdir()
    for stem, normal in normals.items():
        cv2.imwrite(str(root / "images" / f"{stem}.png"),
                    np.full((*normal.shape[:2], 3), 128, np.uint8))
        np.save(root / "normal" / f"{stem}.npy", normal)
    if masks is not None:
        (root / "mask").mkdir()
        for stem, mask in masks.items():
            cv2.imwrite(str(root / "mask" / f"{stem}.png"), mask.astype(np.uint8) * 255)
    return root


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_normals_decode_and_black_is_background(tmp_path: Path, dtype: type) -> None:
    top = np.iinfo(dtype).max
    rgb = np.array([[[top, top // 2, top // 2], [0, 0, 0]]], dtype)  # (+X) and black
    cv2.imwrite(str(tmp_path / "n.png"), rgb[..., ::-1])  # cv2 writes BGR
    n = read_normal(tmp_path / "n.png")
    np.testing.assert_allclose(n[0, 0], [1, 0, 0], atol=2.0 / top)
    assert (n[0, 1] == 0).all()


def test_renormalised_flipped_and_zero_length_masked(tmp_path: Path) -> None:
    normal = np.zeros((3, 4, 3), np.float32)
    normal[..., 2] = 2.0  # length 2 -> re-normalised
    normal[0, 0] = [0, 0, 0]  # zero length inside the mask: counted
    normal[0, 1] = [np.nan, 0, 1]  # non-finite: counted
    normal[2, 3] = [0, 3, 4]
    mask = np.ones((3, 4), bool)
    root = _folder(tmp_path / "d", {"a": normal}, {"a": mask})
    ds = DenseFolder(root, "normal")
    report = ds.reports[str(root / "normal" / "a.npy")]
    assert (report.nonfinite, report.zero_length) == (1, 1)
    s = ds[0]
    assert s["normal"].shape == (3, 3, 4)
    np.testing.assert_allclose(s["normal"][:, 2, 3].numpy(), [0, 0.6, 0.8], atol=1e-6)
    np.testing.assert_allclose(s["normal"][:, 1, 1].numpy(), [0, 0, 1])
    assert not s["valid_mask"][0, 0] and not s["valid_mask"][0, 1] and s["valid_mask"][1:].all()
    assert (s["normal"][:, 0, :2] == 0).all()
    flipped = DenseFolder(root, "normal", flip_y=True, flip_z=True)[0]["normal"]
    np.testing.assert_allclose(flipped[:, 2, 3].numpy(), [0, -0.6, -0.8], atol=1e-6)


def test_without_mask_zero_length_is_background(tmp_path: Path) -> None:
    normal = np.zeros((3, 4, 3), np.float32)
    normal[1, 1] = [0, 0, 1]
    ds = DenseFolder(_folder(tmp_path / "d", {"a": normal}), "normal")
    assert not ds.reports
    assert ds[0]["valid_mask"].sum() == 1


def test_channel_first_npy_and_bad_shapes(tmp_path: Path) -> None:
    normal = np.zeros((3, 5, 4), np.float32)
    normal[2] = 1
    np.save(tmp_path / "cf.npy", normal)
    assert read_normal(tmp_path / "cf.npy").shape == (5, 4, 3)
    np.save(tmp_path / "bad.npy", np.zeros((5, 4), np.float32))
    with pytest.raises(DataFileError, match=r"bad\.npy: normals must be \(H, W, 3\)"):
        read_normal(tmp_path / "bad.npy")


def test_all_zero_normals_skipped(tmp_path: Path) -> None:
    good = np.zeros((3, 3, 3), np.float32)
    good[..., 2] = 1
    root = _folder(tmp_path / "d", {"a": good, "b": np.zeros((3, 3, 3), np.float32)})
    ds = DenseFolder(root, "normal")
    assert len(ds) == 1 and [p.name for p in ds.skipped] == ["b.npy"]
    with pytest.raises(DataFileError, match=r"b\.npy: no valid foreground pixel"):
        DenseFolder(root, "normal", empty="error")


def test_size_mismatch_names_file(tmp_path: Path) -> None:
    good = np.ones((3, 3, 3), np.float32)
    root = _folder(tmp_path / "d", {"a": good})
    np.save(root / "normal" / "a.npy", np.ones((4, 3, 3), np.float32))
    with pytest.raises(DataFileError, match=r"a\.npy: normal size \(4, 3\) differs from its image"):
        DenseFolder(root, "normal")


def test_flip_negates_x_only() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (6, 5, 3), dtype=np.uint8)
    normal = rng.normal(size=(6, 5, 3)).astype(np.float32)
    valid = rng.random((6, 5)) > 0.3
    img, n, v = hflip_dense(image, normal, valid, "normal")
    np.testing.assert_array_equal(img, image[:, ::-1])
    np.testing.assert_array_equal(v, valid[:, ::-1])
    np.testing.assert_array_equal(n[..., 0], -normal[:, ::-1, 0])
    np.testing.assert_array_equal(n[..., 1:], normal[:, ::-1, 1:])
    _, d, _ = hflip_dense(image, normal[..., 0], valid, "depth")
    np.testing.assert_array_equal(d, normal[:, ::-1, 0])


def test_train_transform_flips_x_and_never_rotates() -> None:
    image = np.zeros((8, 6, 3), np.uint8)
    normal = np.zeros((8, 6, 3), np.float32)
    normal[...] = [0.6, 0.0, 0.8]
    valid = np.ones((8, 6), bool)
    flip = DenseTrainTransform((8, 6), "normal", ratio_range=(1.0, 1.0), rotate_limit=60,
                               rotate_prob=1.0, flip_prob=1.0, photometric_distortion=False)
    assert flip.rotate is None
    _, n, v = flip(image, normal, valid)
    assert v.all()  # no rotation padding
    np.testing.assert_allclose(n[..., 0], -0.6)
    np.testing.assert_allclose(n[..., 2], 0.8)


def test_datamodule_normal_batches(tmp_path: Path) -> None:
    generate(tmp_path / "syn", n=2, size=(32, 24))
    dm = DenseFolderDataModule(str(tmp_path / "syn"), "normal", img_size=(32, 24), batch_size=2)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["normal"].shape == (2, 3, 32, 24) and batch["valid_mask"].shape == (2, 32, 24)
    norms = batch["normal"].norm(dim=1)[batch["valid_mask"]]
    torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-5, rtol=0)
