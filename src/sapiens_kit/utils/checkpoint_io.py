"""Crash-safe checkpoint writing: a killed save never costs the previous checkpoint."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from sapiens_kit.errors import UserError

#: Suffix of the temporary file a save writes before renaming it over the target.
PARTIAL_SUFFIX = ".partial"


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic and durable.

    A checkpoint is written to a temporary file in the target's folder (same file system, so the
    rename is atomic), flushed and ``fsync``-ed, then ``os.replace``-d over the target, and the
    folder is ``fsync``-ed so the rename itself survives a power cut. A process killed at any
    moment therefore leaves either the old complete file or the new complete file at ``path``,
    plus at most a stray ``*.partial`` file, which the next save of the same target removes.
    Remote paths (``s3://``, ...) fall back to Lightning's own fsspec transaction.

    Use it as a trainer plugin: ``Trainer(plugins=[AtomicCheckpointIO()])``
    (``conf/trainer/default.yaml`` does this for every kit run).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH,
                        storage_options: Any | None = None) -> None:
        """Write ``checkpoint`` to ``path`` through a temporary file and an atomic rename.

        Args:
            checkpoint: Model and trainer state.
            path: Target file.
            storage_options: Not supported (as in ``TorchCheckpointIO``).

        Raises:
            TypeError: If ``storage_options`` is given.
        """
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        if not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{target.name}.*{PARTIAL_SUFFIX}"):
            stale.unlink(missing_ok=True)  # left by a save that was killed
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PARTIAL_SUFFIX,
                                        dir=target.parent)
        os.close(fd)
        try:
            with open(tmp_name, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    """Persist a rename in ``folder`` (a no-op where directories can't be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_checkpoint(path: str | Path, mmap: bool = True) -> Any:
    """The contents of a ``torch.save`` file (weights only, on the CPU, memory-mapped so that
    reading its metadata does not load gigabytes), with one-line errors naming the file.

    Raises:
        UserError: If ``path`` is not a PyTorch checkpoint, or is damaged or truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint file does not exist")
    is_zip = zipfile.is_zipfile(path)
    with open(path, "rb") as f:
        zip_start = f.read(4) == b"PK\x03\x04"  # a zip whose end is missing: truncated
    if zip_start and not is_zip:
        raise UserError(f"{path}: damaged or truncated checkpoint (an incomplete copy or an "
                        "interrupted save?): use another checkpoint of the run (last.ckpt / "
                        "best.ckpt)")
    try:
        # torch's old non-zip format cannot be memory-mapped but is still a checkpoint.
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and is_zip)
    except Exception as err:
        reason = next((line.strip() for line in str(err).splitlines() if line.strip()),
                      type(err).__name__)
        if not is_zip:
            raise UserError(f"{path}: not a PyTorch checkpoint (a sapiens_kit checkpoint is "
                            "the .ckpt file a training run writes)") from err
        if isinstance(err, zipfile.BadZipFile | EOFError) or "zip" in reason.lower():
            raise UserError(f"{path}: damaged or truncated checkpoint ({reason}): use another "
                            "checkpoint of the run (last.ckpt / best.ckpt)") from err
        raise UserError(f"{path}: cannot read this checkpoint ({reason})") from err
