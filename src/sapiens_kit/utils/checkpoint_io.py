"""Crash-safe checkpoint writing (a killed save never costs the previous checkpoint) and fast
checkpoint reading for inference (only the weights and hyper-parameters are read).
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from sapiens_kit.errors import UserError

if TYPE_CHECKING:
    import lightning as L

    M = TypeVar("M", bound=L.LightningModule)

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


#: Top-level checkpoint entries that rebuilding a model for inference needs: its weights, its
#: constructor arguments (Lightning's current and past spellings) and the Lightning version.
#: Entries whose name starts with :data:`KIT_KEY_PREFIX` (the task class, the run's data record)
#: are kept too. Everything else (optimizer and scheduler states, loop and callback states, the
#: EMA callback's raw weights) is training state that inference never reads.
INFERENCE_KEYS = ("state_dict", "hyper_parameters", "hparams_name", "hparams_type", "hparams",
                  "module_arguments", "pytorch-lightning_version")

#: Prefix of the kit's own top-level checkpoint entries (``sapiens_kit``, ``sapiens_kit_data``).
KIT_KEY_PREFIX = "sapiens_kit"


def inference_entries(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a Lightning checkpoint that inference uses (see :data:`INFERENCE_KEYS`), plus
    its plain scalar entries (``epoch``, ``global_step``), which a task's ``on_load_checkpoint``
    may read and which cost nothing.

    The optimizer state (two tensors per weight with Adam: two thirds of a training checkpoint)
    is left out, so when ``checkpoint`` was read memory-mapped its bytes are never loaded.
    """
    return {key: value for key, value in checkpoint.items()
            if key in INFERENCE_KEYS or str(key).startswith(KIT_KEY_PREFIX)
            or isinstance(value, bool | int | float | str | type(None))}


def load_for_inference(cls: type[M], path: str | Path,
                       checkpoint: Mapping[str, Any] | None = None, **overrides: Any) -> M:
    """``cls`` rebuilt from the Lightning checkpoint at ``path``, on the CPU, reading only its
    weights and hyper-parameters.

    The result equals ``cls.load_from_checkpoint(path, map_location="cpu", **overrides)``
    (Lightning's own steps: version migration, constructor arguments from the stored
    hyper-parameters updated with ``overrides``, ``configure_model``, ``on_load_checkpoint``,
    strict ``load_state_dict``), but Lightning's loader reads the whole file into memory, and a
    training checkpoint of ``sapiens_0_3b`` is 3.7 GB, mostly optimizer state. Here the file is
    memory-mapped (:func:`read_checkpoint`, weights-only unpickling) and only the pages of the
    weights are ever read: start-up time and peak memory no longer grow with the optimizer state.
    The model is also built without the random initialisation of its weights (its parameters
    start on the meta device), which the checkpoint's weights would overwrite anyway; models
    where that is not safe are built as usual (see ``_build_without_init``).

    Args:
        cls: The LightningModule class the checkpoint was written by.
        path: The checkpoint file (used for reading when ``checkpoint`` is not given, and in
            messages).
        checkpoint: The file's contents already read with :func:`read_checkpoint`, to avoid
            reading its metadata twice.
        **overrides: Constructor arguments to change.

    Raises:
        UserError: If the file is unreadable or holds no ``state_dict``.
    """
    try:  # Lightning's steps after reading the file, so both loaders build the same model
        from lightning.pytorch.core.saving import _load_state
        from lightning.pytorch.utilities.migration.utils import _pl_migrate_checkpoint
    except ImportError:  # a Lightning version that moved them: its own (full) loader
        return cls.load_from_checkpoint(path, map_location="cpu", **overrides)
    content: Any = read_checkpoint(path) if checkpoint is None else checkpoint
    if not isinstance(content, Mapping) or "state_dict" not in content:
        raise UserError(f"{path}: no model weights (state_dict) in this checkpoint: give the "
                        ".ckpt file a training run writes")
    content = dict(content)
    if "pytorch-lightning_version" in content:  # (a hand-written checkpoint may not say)
        content = _pl_migrate_checkpoint(content, checkpoint_path=Path(path))
    slim = inference_entries(content)
    hparams_key = cls.CHECKPOINT_HYPER_PARAMS_KEY
    slim[hparams_key] = {**(slim.get(hparams_key) or {}), **overrides}
    model = _build_without_init(cls, slim, _load_state, **overrides)
    if model is None:  # a model the shortcut does not fit: built and initialised as usual
        model = _load_state(cls, slim, strict=None, **overrides)
    return model  # type: ignore[return-value]


@contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Parameters registered in this block are created on the meta device, so the random
    initialisation a constructor gives them costs nothing (5 s for ``sapiens_0_3b`` on a CPU)
    when the checkpoint's weights replace them anyway. Buffers keep their computed values."""
    original = torch.nn.Module.register_parameter

    def register_parameter(module: torch.nn.Module, name: str,
                           param: torch.nn.Parameter | None) -> None:
        if type(param) is torch.nn.Parameter and not param.is_meta:
            param = torch.nn.Parameter(param.detach().to("meta"),
                                       requires_grad=param.requires_grad)
        original(module, name, param)

    torch.nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original  # type: ignore[method-assign]


def _build_without_init(cls: type[M], checkpoint: dict[str, Any], load_state: Any,
                        **overrides: Any) -> M | None:
    """``cls`` built by Lightning's ``load_state`` with its parameters on the meta device, then
    given real (uninitialised) storage and the checkpoint's weights; ``None`` where that cannot
    be done safely: loading that is not strict (a weight missing from the file would stay
    uninitialised), a tensor left on the meta device (made from a parameter while building), or
    a constructor that needs its parameters' values (it fails on the meta device; a real error
    is raised again by the usual build).
    """
    with _parameters_on_meta(), warnings.catch_warnings():
        # Lightning's own load_state_dict copies onto meta parameters: a no-op, done below.
        warnings.filterwarnings("ignore", message=".*to a meta parameter in the current model")
        try:
            model = load_state(cls, checkpoint, strict=None, **overrides)
        except Exception:
            return None
    if not model.strict_loading:
        return None
    made: dict[int, torch.nn.Parameter] = {}  # one new parameter per shared (tied) one
    for module in model.modules():
        for name, param in module._parameters.items():
            if param is not None and param.is_meta:
                if id(param) not in made:
                    made[id(param)] = torch.nn.Parameter(torch.empty_like(param, device="cpu"),
                                                         requires_grad=param.requires_grad)
                module._parameters[name] = made[id(param)]
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        return None
    model.load_state_dict(checkpoint["state_dict"], strict=True)
    return model
