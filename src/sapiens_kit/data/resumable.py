"""Data loading that a resumed run continues exactly, even from a checkpoint taken mid-epoch.

Two things have to come back after ``ckpt_path=...``:

- the order: torchdata's ``StatefulDataLoader`` saves the sampler position (and the workers'
  seeds) in the checkpoint, which Lightning stores and hands back on resume, and skips the
  batches the run already trained on;
- the augmentation: each sample draws from a generator seeded by (epoch seed, sample index)
  (:class:`~sapiens_kit.data.transforms.common.AugmentationRng`). The epoch seed comes from the
  global torch generator when an epoch's iterator is made (``seed_everything`` makes it
  reproducible) and travels in the loader's state, so a mid-epoch resume reuses it.

A side effect users may rely on: the augmentation of a sample no longer depends on
``num_workers`` or on which worker happens to load it.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch.utils.data import Dataset
from torch.utils.data import RandomSampler as TorchRandomSampler
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import RandomSampler as StatefulRandomSampler

_EPOCH_SEED = "sapiens_kit_epoch_seed"

# torchdata 0.11 calls a deprecated torch function each time a loader is built; the warning
# says nothing to our users and would repeat every epoch.
warnings.filterwarnings("ignore", message="'set_vital' is deprecated", category=UserWarning)


def _augmentation_rng(dataset: Any) -> Any:
    """The :class:`AugmentationRng` of the data set behind any wrappers (``.dataset``), if any."""
    while hasattr(dataset, "dataset") and not hasattr(dataset, "transform"):
        dataset = dataset.dataset
    rng = getattr(getattr(dataset, "transform", None), "rng", None)
    return rng if hasattr(rng, "seed") else None


class SeededSamples(Dataset[Any]):
    """Seeds the wrapped data set's augmentation with (epoch seed, index) before each sample.

    The epoch seed sits in a shared-memory tensor, so persistent workers see a new epoch's seed.
    """

    def __init__(self, dataset: Dataset[Any]) -> None:
        self.dataset = dataset
        self._epoch_seed = torch.zeros((), dtype=torch.int64).share_memory_()
        self._rng = _augmentation_rng(dataset)

    def set_epoch_seed(self, seed: int) -> None:
        """The seed of the epoch about to be loaded."""
        self._epoch_seed.fill_(seed)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        if self._rng is not None:
            self._rng.seed((int(self._epoch_seed), int(index)))
        return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        # the wrapped data set's attributes (samples, unreadable, ...) stay reachable
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


class EpochShuffle(StatefulRandomSampler, TorchRandomSampler):
    """Shuffled order drawn afresh from the epoch seed each time an iterator over it is made.

    torchdata's sampler draws the next permutation from wherever its generator stands. A loader
    with workers asks for an iterator twice when it first starts them (once when the iterator is
    built, once when it is reset), and once per epoch after that. So a resumed run, which starts
    its workers in a later epoch, would train that epoch on the generator's *second* permutation
    and the uninterrupted run on its first. Reseeding here makes the order a function of the
    epoch seed alone. (It is also a torch ``RandomSampler``, so Lightning still knows the loader
    shuffles when it swaps in a distributed sampler.)
    """

    def __init__(self, data_source: Any, generator: torch.Generator) -> None:
        super().__init__(data_source, generator=generator)
        self.epoch_seed: int | None = None

    def __iter__(self) -> Any:
        if self.epoch_seed is not None:
            self.generator.manual_seed(self.epoch_seed)
        return super().__iter__()


class ResumableLoader(StatefulDataLoader):
    """``StatefulDataLoader`` that draws one epoch seed per epoch from the global generator,
    saves and restores it, and derives the rest from it: the :class:`SeededSamples`
    augmentation, and (through ``generator``) the shuffle order and the workers' seeds.

    Build it with ``generator=torch.Generator()`` and, to shuffle, ``sampler=EpochShuffle(data,
    generator)`` on the same generator: without a generator, torchdata's sampler draws its seed
    from the global generator when the loader is *built*, which a resumed run does at a
    different point than the uninterrupted one.
    """

    _epoch_seed: int | None = None
    _pending_seed: int | None = None

    def __iter__(self) -> Any:
        if self._pending_seed is not None:  # resuming inside the epoch that was cut off
            self._epoch_seed, self._pending_seed = self._pending_seed, None
        else:
            self._epoch_seed = int(torch.randint(0, 2**62, ()).item())
        if isinstance(self.dataset, SeededSamples):
            self.dataset.set_epoch_seed(self._epoch_seed)
        if self.generator is not None:  # the shuffle order and worker seeds follow it
            self.generator.manual_seed(self._epoch_seed)
        if isinstance(self.sampler, EpochShuffle):
            self.sampler.epoch_seed = self._epoch_seed
        return super().__iter__()

    def state_dict(self) -> dict[str, Any]:
        """The position in the epoch (torchdata's state) plus the epoch seed."""
        return {**super().state_dict(), _EPOCH_SEED: self._epoch_seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the saved epoch; an epoch that had finished starts the next one afresh."""
        state = dict(state_dict)
        seed = state.pop(_EPOCH_SEED, None)
        if state.get("_iterator_finished", True) or seed is None:
            # Nothing to continue: start the next epoch as an uninterrupted run would, drawing
            # its seeds from the restored global generator (restoring the spent iterator
            # would draw extra ones and shift every later random number).
            self._pending_seed = None
            super().load_state_dict({})
            return
        self._pending_seed = int(seed)
        super().load_state_dict(state)
