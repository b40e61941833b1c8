"""Dense targets as objects: registry, reading, validity, flips, colours, HF cells, and a new
3-channel target defined here flowing through the folder dataset, transforms and HF export with
no change under ``src/``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest
import torch
from datasets import Array3D, Dataset, Features, Image
from PIL import Image as PILImage

from sapiens_kit.data import DenseFolderDataModule, HFDatasetDataModule
from sapiens_kit.data.datasets.dense_folder import DenseFolder
from sapiens_kit.data.export.hf import DenseLayout, export_dataset, get_layout
from sapiens_kit.data.io import DataFileError
from sapiens_kit.data.synthetic import generate
from sapiens_kit.data.targets import (
    DenseTarget,
    DepthTarget,
    NormalTarget,
    get_target,
    list_targets,
    register_target,
)
from sapiens_kit.data.transforms.dense import DenseEvalTransform, DenseTrainTransform, hflip_dense
from sapiens_kit.visualize import colorize_depth, colorize_normals

SIZE = (32, 24)


@dataclass(frozen=True)
class AlbedoTarget(DenseTarget):
    """Unshaded surface colour in [0, 1]: 3 channels, mirrors without a sign change."""

    key: ClassVar[str] = "albedo"
    channels: ClassVar[int] = 3
    suffixes: ClassVar[tuple[str, ...]] = (".npy", ".png")
    rotatable: ClassVar[bool] = True
    hf_image_modes: ClassVar[tuple[str, ...]] = ("RGB",)


# ------------------------------------------------------------------------------------ registry
def test_registry_resolves_keys_objects_classes_and_configs() -> None:
    assert {"depth", "normal"} <= set(list_targets())
    assert isinstance(get_target("depth"), DepthTarget)
    assert isinstance(get_target("normal"), NormalTarget)
    albedo = AlbedoTarget()
    assert get_target(albedo) is albedo
    assert isinstance(get_target(AlbedoTarget), AlbedoTarget)
    built = get_target({"_target_": f"{__name__}.AlbedoTarget"})
    assert isinstance(built, AlbedoTarget)
    scaled = get_target({"_target_": "sapiens_kit.data.targets.DepthTarget", "depth_scale": 0.5})
    assert scaled == DepthTarget(depth_scale=0.5)
    with pytest.raises(ValueError, match=r"unknown dense target 'albedo'.*depth"):
        get_target("albedo")  # defined here, not registered: usable as an object only
    with pytest.raises(ValueError, match="already taken"):

        @register_target
        @dataclass(frozen=True)
        class OtherDepth(DenseTarget):
            key: ClassVar[str] = "depth"
            channels: ClassVar[int] = 1


def test_facts_and_options() -> None:
    depth, normal = DepthTarget(), NormalTarget()
    assert (depth.key, depth.channels, depth.folder_names) == ("depth", 1, ("depth", "depths"))
    assert (normal.key, normal.channels, normal.folder_names) == ("normal", 3,
                                                                 ("normal", "normals"))
    assert AlbedoTarget().folder_names == ("albedo",)
    assert depth.rotatable and not normal.rotatable
    assert depth.with_options(depth_scale=0.001, flip_y=True) == DepthTarget(depth_scale=0.001)
    assert depth.with_options(depth_scale=None) is depth
    assert normal.with_options(flip_y=True).flip_y


# ------------------------------------------------------------------------------------ reading
def test_depth_read_validity_and_report_fields(tmp_path: Path) -> None:
    depth = np.array([[1.0, np.nan], [-2.0, 0.0]], np.float32)
    np.save(tmp_path / "d.npy", depth)
    value, valid, bad = DepthTarget(depth_scale=2.0).load(tmp_path / "d.npy")
    np.testing.assert_array_equal(value, [[2.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(valid, [[True, False], [False, False]])
    assert set(bad) == {"nonfinite", "negative", "foreground_without_depth"}
    assert DepthTarget.background_anomalies == ("foreground_without_depth",)
    assert [bad[k].sum() for k in ("nonfinite", "negative", "foreground_without_depth")] == [
        1, 1, 1]
    cv2.imwrite(str(tmp_path / "mm.png"), np.array([[1000, 2000]], np.uint16))
    np.testing.assert_allclose(DepthTarget(depth_scale=0.001).read(tmp_path / "mm.png"),
                               [[1.0, 2.0]])


def test_normal_read_validity(tmp_path: Path) -> None:
    normal = np.zeros((2, 2, 3), np.float32)
    normal[0, 0] = [0, 0, 2]
    normal[0, 1] = [np.inf, 0, 1]
    np.save(tmp_path / "n.npy", normal)
    value, valid, bad = NormalTarget(flip_z=True).load(tmp_path / "n.npy")
    np.testing.assert_allclose(value[0, 0], [0, 0, -1])
    np.testing.assert_array_equal(valid, [[True, False], [False, False]])
    assert set(bad) == {"nonfinite", "zero_length"} and bad["zero_length"].sum() == 2


def test_generic_reader_for_a_new_target(tmp_path: Path) -> None:
    rgb = np.array([[[255, 0, 51], [0, 255, 0]]], np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), rgb[..., ::-1])
    np.testing.assert_allclose(AlbedoTarget().read(tmp_path / "a.png"), rgb / 255, atol=1e-6)
    np.save(tmp_path / "cf.npy", np.ones((3, 4, 5), np.float32))  # channel-first
    assert AlbedoTarget().read(tmp_path / "cf.npy").shape == (4, 5, 3)
    np.save(tmp_path / "bad.npy", np.ones((4, 5), np.float32))
    with pytest.raises(DataFileError, match=r"bad\.npy: albedo must be \(H, W, 3\)"):
        AlbedoTarget().read(tmp_path / "bad.npy")


# ------------------------------------------------------------------------------------ augmentation
def test_flip_rules() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(4, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(AlbedoTarget().hflip(values), values[:, ::-1])
    flipped = NormalTarget().hflip(values)
    np.testing.assert_array_equal(flipped[..., 0], -values[:, ::-1, 0])
    np.testing.assert_array_equal(flipped[..., 1:], values[:, ::-1, 1:])
    np.testing.assert_array_equal(DepthTarget().hflip(values[..., 0]), values[:, ::-1, 0])
    image, valid = np.zeros((4, 5, 3), np.uint8), np.ones((4, 5), bool)
    _, by_key, _ = hflip_dense(image, values, valid, "normal")
    np.testing.assert_array_equal(by_key, flipped)


def test_rotation_follows_the_target() -> None:
    def tf(kind: object) -> DenseTrainTransform:
        return DenseTrainTransform((8, 6), kind, rotate_limit=60, rotate_prob=1.0)  # type: ignore[arg-type]

    assert tf("depth").rotate is not None and tf(DepthTarget()).rotate is not None
    assert tf("normal").rotate is None and tf(NormalTarget()).rotate is None
    assert tf(AlbedoTarget()).rotate is not None and tf(AlbedoTarget()).kind == "albedo"


# ------------------------------------------------------------------------------------ colours
def test_colorize_matches_the_visualisation_primitives() -> None:
    rng = np.random.default_rng(1)
    depth = rng.uniform(1, 3, (6, 5)).astype(np.float32)
    normal = rng.normal(size=(6, 5, 3)).astype(np.float32)
    fg = rng.random((6, 5)) > 0.4
    np.testing.assert_array_equal(get_target("depth").colorize(depth, fg),
                                  colorize_depth(depth, fg))
    np.testing.assert_array_equal(get_target("normal").colorize(normal, fg),
                                  colorize_normals(normal, fg))
    albedo = rng.uniform(0, 1, (6, 5, 3)).astype(np.float32)
    rgb = AlbedoTarget().colorize(albedo, fg)
    assert rgb.dtype == np.uint8 and rgb.shape == (6, 5, 3) and not rgb[~fg].any()
    np.testing.assert_array_equal(rgb[fg], (albedo[fg] * 255).round().astype(np.uint8))


# ------------------------------------------------------------------------------------ HF cells
def test_hf_cells_round_trip(tmp_path: Path) -> None:
    depth = np.random.default_rng(2).uniform(0.5, 4, (5, 4)).astype(np.float32)
    path = DepthTarget().write_hf(depth.tolist(), tmp_path / "d", "row 0")
    assert path.suffix == ".npy"
    np.testing.assert_array_equal(DepthTarget().read(path), depth)
    normal = np.zeros((5, 4, 3), np.float32)
    normal[..., 2] = 1
    rgb = PILImage.fromarray(((normal + 1) / 2 * 255).round().astype(np.uint8))
    path = NormalTarget().write_hf(rgb, tmp_path / "n", "row 0")
    assert path.suffix == ".png"
    np.testing.assert_allclose(NormalTarget().load(path)[0], normal, atol=1e-2)
    with pytest.raises(DataFileError, match="row 3: column 'depth' holds int"):
        DepthTarget().write_hf(7, tmp_path / "x", "row 3")


# ------------------------------------------------------------------------------------ a new target
@pytest.fixture(scope="module")
def albedo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic scenes with the albedo layer, written by the target defined in this module."""
    root = generate(tmp_path_factory.mktemp("albedo") / "syn", n=3, size=SIZE,
                    targets=[AlbedoTarget(), "depth"])
    assert sorted(p.name for p in root.iterdir()) == ["albedo", "depth", "images", "mask"]
    return root


def test_new_target_through_folder_dataset_and_transforms(albedo_root: Path) -> None:
    ds = DenseFolder(albedo_root, AlbedoTarget(), transform=DenseEvalTransform(SIZE))
    sample = ds[0]
    assert sample["albedo"].shape == (3, *SIZE) and sample["albedo"].dtype == torch.float32
    fg = cv2.imread(str(albedo_root / "mask" / "synth_0000.png"), cv2.IMREAD_UNCHANGED) > 0
    assert torch.equal(sample["valid_mask"], torch.from_numpy(fg))
    stored = np.load(albedo_root / "albedo" / "synth_0000.npy")
    np.testing.assert_array_equal(sample["albedo"].permute(1, 2, 0).numpy()[fg], stored[fg])
    flip = DenseTrainTransform(SIZE, AlbedoTarget(), ratio_range=(1.0, 1.0), rotate_prob=0.0,
                               flip_prob=1.0, photometric_distortion=False)
    image = np.zeros((*SIZE, 3), np.uint8)
    _, mirrored, _ = flip(image, stored, fg)
    np.testing.assert_array_equal(mirrored, stored[:, ::-1])  # no sign change


@pytest.mark.parametrize("target", [AlbedoTarget(), {"_target_": f"{__name__}.AlbedoTarget"}])
def test_new_target_through_the_data_module(albedo_root: Path, target: object) -> None:
    dm = DenseFolderDataModule(str(albedo_root), target, img_size=SIZE, batch_size=2)  # type: ignore[arg-type]
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["albedo"].shape == (2, 3, *SIZE) and batch["valid_mask"].shape == (2, *SIZE)


def test_new_target_through_hf_export_and_data_module(albedo_root: Path, tmp_path: Path) -> None:
    stems = sorted(p.stem for p in (albedo_root / "images").iterdir())
    stored = [np.load(albedo_root / "albedo" / f"{s}.npy") for s in stems]
    table = Dataset.from_dict(
        {"photo": [str(albedo_root / "images" / f"{s}.png") for s in stems],
         "colour": stored,
         "person": [str(albedo_root / "mask" / f"{s}.png") for s in stems]},
        features=Features({"photo": Image(), "colour": Array3D((*SIZE, 3), "float32"),
                           "person": Image()}))
    table.save_to_disk(str(tmp_path / "ds"))
    layout = get_layout(AlbedoTarget())
    assert isinstance(layout, DenseLayout) and (layout.name, layout.role) == ("albedo", "albedo")
    dm = HFDatasetDataModule(str(tmp_path / "ds"), task=AlbedoTarget(), image_column="photo",
                             albedo_column="colour", foreground_column="person",
                             cache_dir=str(tmp_path / "cache"), img_size=SIZE, augment=False)
    assert dm.task == "albedo"
    dm.setup("fit")
    assert sorted(p.name for p in (dm.root_dir / "train").iterdir()) == [
        "albedo", "images", "mask"]
    sample = dm.val_dataset[0]
    valid = sample["valid_mask"].numpy()
    assert valid.any()
    np.testing.assert_allclose(sample["albedo"].permute(1, 2, 0).numpy()[valid],
                               stored[0][valid], atol=1e-6)
    # The exporter on its own, keyed by the target: exported once.
    again = export_dataset({"train": table}, tmp_path / "cache2", AlbedoTarget(),
                           {"image": "photo", "albedo": "colour"})
    assert again.name.startswith("hf_albedo_") and (again / "train" / "albedo").is_dir()


def test_unknown_task_and_argument_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="task must be one of seg, pose, depth, normal"):
        HFDatasetDataModule(str(tmp_path), task="albedo")
    with pytest.raises(TypeError, match="unexpected arguments"):
        HFDatasetDataModule(str(tmp_path), task="seg", mask_colum="x")
    with pytest.raises(TypeError, match="depht_column"):
        HFDatasetDataModule(str(tmp_path), task="depth", depht_column="x")
    # Columns of other known roles are accepted (and unused), as before.
    dm = HFDatasetDataModule(str(tmp_path), task="seg", mask_column="m", depth_column="d")
    assert dm.columns == {"image": "image", "mask": "m"}
