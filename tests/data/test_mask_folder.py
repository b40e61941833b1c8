"""Mask-folder dataset: samples, splits, and one clear error per bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sapiens_kit.data import MaskFolderDataModule
from sapiens_kit.data.classes import ClassesFileError, load_classes
from sapiens_kit.data.datasets import MaskFolder
from sapiens_kit.data.io import DataFileError
from sapiens_kit.data.transforms.seg import SegTrainTransform


def test_samples_have_fixed_keys_and_types(seg_folder: Path) -> None:
    dm = MaskFolderDataModule(str(seg_folder), img_size=(64, 48))
    dm.setup()
    sample = dm.train_dataset[0]
    assert sample["image"].dtype == torch.uint8 and sample["image"].shape == (3, 64, 48)
    assert sample["mask"].dtype == torch.int64 and sample["mask"].shape == (64, 48)
    val = dm.val_dataset[1]
    assert val["image"].shape == (3, 64, 48)
    assert val["mask"].shape == (42, 31) and val["meta"]["orig_size"] == (42, 31)
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 48) and isinstance(batch["mask"], list)
    assert dm.task_kwargs()["num_classes"] == 3


def test_split_lists_and_folders(seg_folder: Path) -> None:
    (seg_folder / "train.txt").write_text("img0\nimg1\nimg2\n")
    (seg_folder / "val.txt").write_text("img3\n")
    dm = MaskFolderDataModule(str(seg_folder), img_size=(32, 32), train_list="train.txt",
                              val_list="val.txt")
    dm.setup()
    assert len(dm.train_dataset) == 3 and len(dm.val_dataset) == 1
    assert Path(dm.val_dataset.samples[0][0]).stem == "img3"


def test_flip_swaps_left_and_right_labels() -> None:
    classes = load_classes("sapiens28")
    lut = classes.flip_lut()
    assert classes.num_classes == 28 and classes.names[4] == "Left_Foot"
    assert lut[4] == 13 and lut[13] == 4 and lut[21] == 21 and lut[255] == 255
    tf = SegTrainTransform((8, 8), lut, ratio_range=(1.0, 1.0), rotate_limit=0, flip_prob=1.0)
    tf.rotate = lambda image, mask: {"image": image, "mask": mask}
    tf.photometric = lambda image: {"image": image}
    tf.rng._reseed = []
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :4] = 255
    mask = np.zeros((8, 8), np.uint8)
    mask[:, :4] = 4  # Left_Foot on the left half
    out_img, out_mask = tf(image, mask)
    assert (out_mask[:, 4:] == 13).all() and (out_mask[:, :4] == 0).all()
    assert (out_img[:, 4:] == 255).all()


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="does not exist"):
        MaskFolderDataModule(str(tmp_path / "nope"))
    (tmp_path / "images").mkdir()
    with pytest.raises(DataFileError, match=r"masks.*does not exist"):
        MaskFolder(tmp_path, num_classes=2)


def test_image_without_mask_and_reverse(seg_folder: Path) -> None:
    (seg_folder / "masks" / "img2.png").unlink()
    with pytest.raises(DataFileError, match=r"img2\.png: image has no mask"):
        MaskFolder(seg_folder, num_classes=3)
    cv2.imwrite(str(seg_folder / "masks" / "img2.png"), np.zeros((44, 32), np.uint8))
    cv2.imwrite(str(seg_folder / "masks" / "extra.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(DataFileError, match=r"extra\.png: mask has no image"):
        MaskFolder(seg_folder, num_classes=3)


def test_mask_size_differs(seg_folder: Path) -> None:
    cv2.imwrite(str(seg_folder / "masks" / "img1.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(DataFileError, match=r"img1\.png: mask size \(10, 10\) differs"):
        MaskFolderDataModule(str(seg_folder)).setup()


def test_class_ids_outside_the_list(seg_folder: Path) -> None:
    mask = np.zeros((44, 32), np.uint8)
    mask[0, 0] = 7
    cv2.imwrite(str(seg_folder / "masks" / "img2.png"), mask)
    with pytest.raises(DataFileError, match=r"img2\.png: class ids \[7\] are outside the 3"):
        MaskFolderDataModule(str(seg_folder)).setup()


def test_unreadable_image(seg_folder: Path) -> None:
    (seg_folder / "images" / "img3.png").write_bytes(b"not a png at all")
    with pytest.raises(DataFileError, match=r"img3\.png: unreadable image"):
        MaskFolderDataModule(str(seg_folder)).setup()


def test_colour_mask_is_refused(seg_folder: Path) -> None:
    colour = np.zeros((46, 33, 3), np.uint8)
    colour[..., 2] = 200
    cv2.imwrite(str(seg_folder / "masks" / "img3.png"), colour)
    with pytest.raises(DataFileError, match=r"img3\.png: mask has 3 different channels"):
        MaskFolderDataModule(str(seg_folder)).setup()


def test_bad_classes_files(tmp_path: Path) -> None:
    bad = tmp_path / "c.json"
    bad.write_text('{"names": ["a"]}')
    with pytest.raises(ClassesFileError, match=r"c\.json: expected a mapping with a 'classes'"):
        load_classes(bad)
    bad.write_text('{"classes": ["a", "b"], "flip_pairs": [["a", "zz"]]}')
    with pytest.raises(ClassesFileError, match="unknown class"):
        load_classes(bad)
    bad.write_text("{broken")
    with pytest.raises(ClassesFileError, match="cannot parse"):
        load_classes(bad)
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("classes: [bg, left_arm, right_arm]\n"
                         "flip_pairs: [[left_arm, right_arm]]\n")
    assert load_classes(yaml_file).flip_pairs == ((1, 2),)


def test_workers_draw_different_augmentations(seg_folder: Path) -> None:
    """Forked DataLoader workers must not replay the same random augmentations."""
    from torch.utils.data import DataLoader

    from sapiens_kit.data.collate import collate

    dm = MaskFolderDataModule(str(seg_folder), img_size=(32, 24))
    dm.setup()
    ds = dm.train_dataset
    ds.samples = [ds.samples[0]] * 4  # the same photo four times
    torch.manual_seed(0)
    loader = DataLoader(ds, batch_size=1, num_workers=2, collate_fn=collate)
    images = [b["image"][0] for b in loader]  # worker 0, worker 1, worker 0, worker 1
    assert not torch.equal(images[0], images[1])
