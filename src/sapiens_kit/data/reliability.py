"""Bad data policies: skip-and-report corrupt samples, and refuse data that doesn't fit the model.

``data.on_error=raise`` (default) stops at the first unreadable file with a
:class:`~sapiens_kit.data.io.DataFileError` naming it. ``data.on_error=skip`` replaces such a
sample by the next readable one (deterministically, so resumed runs see the same data), records
the file in the batch ``meta`` (so counts survive DataLoader worker processes) and
:class:`SkippedSamplesReport` logs how many and which files were skipped at the end of each
epoch. Files found unreadable by a data set's up-front check are dropped and reported too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import lightning as L
from torch.utils.data import Dataset

from sapiens_kit.data.io import DataFileError

log = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]
#: Key in a sample's ``meta`` listing the files skipped to produce it.
SKIPPED_KEY = "skipped"


class DataMismatchError(ValueError):
    """The data set describes other labels, keypoints or input sizes than the model predicts."""


def check_on_error(on_error: str) -> OnError:
    """Validate an ``on_error`` value.

    Raises:
        ValueError: If it is not ``raise`` or ``skip``.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    return on_error  # type: ignore[return-value]


def file_of(err: DataFileError) -> str:
    """The file a :class:`DataFileError` names (its messages start with ``<path>: ``)."""
    return str(err).split(": ", 1)[0]


class SkipCorrupt(Dataset[dict[str, Any]]):
    """Wraps a data set so a sample whose files are unreadable is replaced by the next good one.

    Args:
        dataset: Map-style data set returning dict samples with a ``meta`` dict.
        unreadable: Files the data set already dropped in its up-front check (reported once).
    """

    def __init__(self, dataset: Dataset[dict[str, Any]], unreadable: Sequence[str] = ()) -> None:
        self.dataset = dataset
        self.unreadable = list(unreadable)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        n, skipped = len(self), []
        for k in range(n):
            try:
                sample = self.dataset[(index + k) % n]
            except DataFileError as err:
                log.warning("skipping corrupt sample: %s", err)
                skipped.append(file_of(err))
                continue
            meta = sample.get("meta")
            if isinstance(meta, dict):
                meta[SKIPPED_KEY] = skipped
            return sample
        raise DataFileError(f"{skipped[0]}: every one of the {n} samples is unreadable")

    def __getattr__(self, name: str) -> Any:
        # the wrapped data set's own attributes (samples, coco_ground_truth, ...) stay reachable
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


class SkippedSamplesReport(L.Callback):
    """Counts the files skipped under ``on_error=skip`` and reports them at each epoch's end.

    Names come from the batch ``meta`` (filled in the worker processes), so the counts are right
    with any ``num_workers``. Logged as ``{stage}/skipped`` and as a warning listing the files.
    """

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {"train": [], "val": []}
        self.reported_setup = False

    @staticmethod
    def _names(batch: Any) -> list[str]:
        metas = batch.get("meta", []) if isinstance(batch, dict) else []
        return [f for m in metas if isinstance(m, dict) for f in m.get(SKIPPED_KEY, [])]

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        """Collect the files skipped for this training batch."""
        self.seen["train"] += self._names(batch)

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        """Collect the files skipped for this validation batch."""
        self.seen["val"] += self._names(batch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Report (and reset) the training epoch's skipped files."""
        self._report("train", trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Report (and reset) the validation pass's skipped files."""
        self._report("val", trainer, pl_module)

    def _report(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        names, self.seen[stage] = self.seen[stage], []
        if not self.reported_setup:
            self.reported_setup = True
            dm = getattr(trainer, "datamodule", None)
            for split in ("train_dataset", "val_dataset"):
                dropped = getattr(getattr(dm, split, None), "unreadable", [])
                if dropped:
                    log.warning("%s: %d unreadable files were dropped before %s started: %s",
                                split, len(dropped), stage, ", ".join(dropped))
        if not trainer.sanity_checking:
            pl_module.log(f"{stage}/skipped", float(len(names)), on_epoch=True, on_step=False)
        if names:
            unique = sorted(set(names))
            log.warning("epoch %d %s: %d corrupt samples skipped (replaced by others): %s",
                        trainer.current_epoch, stage, len(names), ", ".join(unique))


def attach(trainer: Any, datamodule: Any, on_error: OnError) -> None:
    """Check the data against the model the trainer runs and add the skip report callback."""
    if trainer is None:
        return
    task = trainer.lightning_module
    if task is not None:
        check_data_matches_task(datamodule, task)
    if on_error == "skip" and not any(isinstance(c, SkippedSamplesReport)
                                      for c in trainer.callbacks):
        trainer.callbacks.append(SkippedSamplesReport())


def check_data_matches_task(datamodule: Any, task: Any) -> None:
    """Raise :class:`DataMismatchError` if the data's labels, keypoints or input size differ from
    what ``task`` predicts (e.g. a 28-class checkpoint evaluated on a 2-class folder).

    Compares the data module's :meth:`task_kwargs` with the task's hyperparameters (class count,
    class names, ignore index, keypoint set) and the data module's ``img_size`` with the task's.
    ``train`` and ``evaluate`` hand the task's size to the data module, so there the sizes always
    agree; the size check catches Python code that builds both with different sizes.
    """
    hp = getattr(task, "hparams", {})
    data = datamodule.task_kwargs() if hasattr(datamodule, "task_kwargs") else {}
    problems = []
    for key in ("num_classes", "ignore_index", "class_names"):
        mine, theirs = data.get(key), hp.get(key)
        if mine is not None and theirs is not None and list_or(mine) != list_or(theirs):
            problems.append(f"{key}: data has {mine}, model has {theirs}")
    if data.get("keypoints") is not None and hasattr(task, "kset"):
        from sapiens_kit.data.keypoints import load_keypoint_set

        kset = load_keypoint_set(data["keypoints"])
        if list(kset.names) != list(task.kset.names):
            problems.append(f"keypoints: data has {kset.num_keypoints} ({kset.name}), model "
                            f"has {task.kset.num_keypoints} ({task.kset.name})")
    size, model_size = getattr(datamodule, "img_size", None), getattr(task, "img_size", None)
    if size is not None and model_size is not None and tuple(size) != tuple(model_size):
        problems.append(f"img_size: data is resized to {tuple(size)}, model expects "
                        f"{tuple(model_size)}")
    if problems:
        where = getattr(datamodule, "root", None) or type(datamodule).__name__
        raise DataMismatchError(f"{where}: the data does not match the model: "
                                + "; ".join(problems))


def list_or(value: Any) -> Any:
    """Lists and tuples compare equal by content."""
    return list(value) if isinstance(value, (list, tuple)) else value
