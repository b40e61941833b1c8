"""Shared DataLoader plumbing for the kit's data modules."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, Sampler

from sapiens_kit.data.collate import collate
from sapiens_kit.data.reliability import SkipCorrupt, attach, check_on_error
from sapiens_kit.data.resumable import EpochShuffle, ResumableLoader, SeededSamples


class BaseDataModule(L.LightningDataModule):
    """Holds train/val datasets and builds loaders with the kit's collate function.

    Subclasses fill ``self.train_dataset`` / ``self.val_dataset`` in ``setup`` and report what the
    task needs to know about the data (classes, keypoints) through :meth:`task_kwargs`, and call
    :meth:`_after_setup` at the end of ``setup`` (checks the data against the model).

    ``on_error``: ``raise`` stops at an unreadable file; ``skip`` replaces the sample by another
    and reports the skipped files each epoch (:mod:`sapiens_kit.data.reliability`).
    """

    def __init__(self, batch_size: int = 2, val_batch_size: int | None = None,
                 num_workers: int = 0, on_error: str = "raise") -> None:
        super().__init__()
        self.on_error = check_on_error(on_error)
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.train_dataset: Dataset[Any] | None = None
        self.val_dataset: Dataset[Any] | None = None

    def task_kwargs(self) -> dict[str, Any]:
        """Keyword arguments the task is built with (e.g. ``num_classes``)."""
        return {}

    def _after_setup(self) -> None:
        """Fail now if the data doesn't fit the model being run; add the skip report."""
        attach(self.trainer, self, self.on_error)

    def _eval_sampler(self, dataset: Dataset[Any]) -> Sampler[int] | None:
        """Under multi-process runs, each evaluation sample on exactly one rank.

        Lightning's default DistributedSampler pads the last round with repeated samples, which
        the metrics would count twice. Unequal batch counts are fine under DDP when nothing is
        trained (torch DDP syncs buffers at most on the first evaluation batch), but not under
        FSDP, whose every forward gathers weights from all ranks: there the padding stays.
        """
        from lightning.pytorch.strategies import DDPStrategy

        trainer = self.trainer
        world = trainer.world_size if trainer is not None else 1
        if world < 2 or not isinstance(trainer.strategy, DDPStrategy):
            return None
        if len(dataset) < world:  # type: ignore[arg-type]
            return None  # a rank without any batch would leave the others waiting
        return UnrepeatedDistributedSampler(dataset, num_replicas=world,
                                            rank=trainer.global_rank, shuffle=False)

    def _loader(self, dataset: Dataset[Any] | None, batch_size: int, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        if self.on_error == "skip":
            dataset = SkipCorrupt(dataset, getattr(dataset, "unreadable", ()))
        dataset = SeededSamples(dataset)
        generator = torch.Generator()
        # Resumable mid-epoch, with augmentation seeded per sample (see data/resumable.py).
        return ResumableLoader(
            dataset,
            batch_size=batch_size,
            sampler=EpochShuffle(dataset, generator) if shuffle else self._eval_sampler(dataset),
            num_workers=self.num_workers,
            collate_fn=collate,
            persistent_workers=self.num_workers > 0,
            generator=generator,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._loader(self.train_dataset, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in file order."""
        return self._loader(self.val_dataset, self.val_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """The validation set, for ``trainer.test``."""
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        """The validation set, for ``trainer.predict``."""
        return self.val_dataloader()
