"""The kit's training loaders: per-sample augmentation seeds and a saved position mid-epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sapiens_kit.data.datamodules import MaskFolderDataModule
from sapiens_kit.data.resumable import ResumableLoader, SeededSamples
from tests.helpers import write_mask_folder


def train_loader(root: Path, workers: int) -> Any:
    dm = MaskFolderDataModule(str(root), img_size=(32, 24), batch_size=2, num_workers=workers)
    dm.setup("fit")
    return dm.train_dataloader()


def samples(batches: Any) -> dict[str, np.ndarray]:
    """``{file: augmented image}`` for every sample of the batches."""
    return {m["path"]: img.numpy() for b in batches for m, img in zip(b["meta"], b["image"],
                                                                     strict=True)}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mask_folder(tmp_path_factory.mktemp("resumable") / "seg", n=6)


def test_augmentation_does_not_depend_on_workers_and_changes_per_epoch(root: Path) -> None:
    torch.manual_seed(3)
    serial = train_loader(root, 0)
    first, second = samples(list(serial)), samples(list(serial))
    torch.manual_seed(3)
    parallel = train_loader(root, 2)  # persistent workers: the epoch seed reaches them
    first_w, second_w = samples(list(parallel)), samples(list(parallel))
    assert isinstance(serial, ResumableLoader) and isinstance(serial.dataset, SeededSamples)
    assert first.keys() == first_w.keys() and len(first) == 6
    for path in first:
        assert np.array_equal(first[path], first_w[path]), path
        assert np.array_equal(second[path], second_w[path]), path
    assert sum(not np.array_equal(first[p], second[p]) for p in first) >= 5


def test_a_saved_position_continues_the_epoch(root: Path) -> None:
    torch.manual_seed(5)
    loader = train_loader(root, 0)
    it = iter(loader)
    seen = [next(it)]
    state = loader.state_dict()
    rest = list(it)

    torch.manual_seed(99)  # a resumed process: another global generator state
    resumed = train_loader(root, 0)
    resumed.load_state_dict(state)
    rest_resumed = list(resumed)
    assert len(rest_resumed) == len(rest) == 2
    a, b = samples(rest), samples(rest_resumed)
    assert a.keys() == b.keys() and not a.keys() & samples(seen).keys()
    for path in a:
        assert np.array_equal(a[path], b[path]), path


def order(batches: Any) -> list[str]:
    return [m["path"] for b in batches for m in b["meta"]]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_later_epoch_on_a_new_loader_has_the_same_order(root: Path, workers: int) -> None:
    """A resumed run starts its loader (and its workers) in a later epoch: that epoch's order
    must be the one the long-lived loader gave it. A first multi-worker iterator asks the sampler
    twice; without :class:`EpochShuffle` the new loader used the second permutation."""
    torch.manual_seed(11)
    loader = train_loader(root, workers)
    list(loader)
    rng = torch.get_rng_state()  # what a checkpoint at the end of epoch 0 restores
    later = order(loader)
    torch.set_rng_state(rng)
    assert order(train_loader(root, workers)) == later
