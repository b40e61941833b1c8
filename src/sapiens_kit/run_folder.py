"""Run folders are never overwritten by accident.

``train`` and ``evaluate`` check their output folder (``paths.output_dir``) before they touch
anything: a folder that already holds results (``checkpoints/``, ``metrics.json``,
``predictions/``) is refused unless the run resumes from a checkpoint inside it
(``ckpt_path=``) or ``overwrite=true`` is given, which removes the old results first so old and
new are never mixed. ``evaluate`` also reads back the data a run was trained with.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sapiens_kit.errors import UserError

log = logging.getLogger("sapiens_kit")

#: What a run folder holds once ``train`` or ``evaluate`` has written to it.
RESULTS = ("checkpoints", "metrics.json", "predictions")


def existing_results(out_dir: Path, names: Sequence[str] = RESULTS) -> list[Path]:
    """The result files and folders of ``names`` already in ``out_dir`` (empty folders don't
    count)."""
    found = []
    for name in names:
        path = out_dir / name
        if path.is_dir() and not path.is_symlink():
            if any(path.iterdir()):
                found.append(path)
        elif path.exists() or path.is_symlink():
            found.append(path)
    return found


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.expanduser().resolve(), folder.expanduser().resolve()
    return folder == path or folder in path.parents


def _launching_process() -> bool:
    """Whether this is the process the user started (not one a multi-GPU launcher added)."""
    ranks = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")
    return all(os.environ.get(name, "0") in ("", "0") for name in ranks)


def claim_run_folder(out_dir: str | Path, overwrite: bool, resume: str | None = None,
                     clear: Sequence[str] = RESULTS) -> list[Path]:
    """Make sure writing results into ``out_dir`` overwrites nothing by accident.

    Call it before anything is written. A folder holding results is refused with one line
    naming it, unless ``resume`` (``ckpt_path=``) is a checkpoint inside it, or ``overwrite`` is
    set: then the old entries named in ``clear`` are returned, for :func:`remove_results` to
    delete before the new results are written, so the folder ends up with this run's only.

    Raises:
        UserError: If the folder holds results and neither a resume nor ``overwrite`` allows it.
    """
    if not _launching_process():
        return []  # the processes a multi-GPU run starts: the first one has checked already
    out = Path(out_dir)
    found = existing_results(out)
    if not found:
        return []
    if resume and _inside(Path(str(resume)), out):
        return []
    if not overwrite:
        names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in found)
        raise UserError(
            f"{out}: output folder already holds results ({names}); choose a new "
            "paths.output_dir, pass overwrite=true to replace them, or resume that run with "
            f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}"
        )
    return existing_results(out, clear)


def remove_results(paths: Sequence[Path]) -> None:
    """Delete the earlier results :func:`claim_run_folder` returned (``overwrite=true``)."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    if paths:
        log.warning("overwrite=true: removed the earlier results in %s (%s)", paths[0].parent,
                    ", ".join(p.name for p in paths))


def data_given_on_command_line() -> bool:
    """Whether ``data=`` or a ``data.*`` key was given on the command line.

    Outside a Hydra app (tests, notebooks) the composed config is what the caller chose, so this
    answers ``True``.
    """
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = HydraConfig.get().overrides.task
    except ValueError:
        return True
    keys = (o.split("=", 1)[0].lstrip("+~") for o in overrides)
    return any(k == "data" or k.startswith("data.") for k in keys)


def recorded_data(ckpt: str | Path) -> dict[str, Any] | None:
    """The data config stored with the run that wrote ``ckpt``, or ``None`` (an older
    checkpoint, or a file that isn't one: loading it reports that)."""
    import torch

    from sapiens_kit.callbacks.checkpoints import DATA_KEY

    try:
        content = torch.load(Path(ckpt), map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None
    record = content.get(DATA_KEY) if isinstance(content, dict) else None
    return dict(record) if isinstance(record, dict) and record.get("_target_") else None


def use_recorded_data(cfg: Any, ckpt: str | Path) -> None:
    """Set ``cfg.data`` to the data ``ckpt``'s run was trained with, unless ``data=`` or
    ``data.*`` was given; an older checkpoint without the record keeps the config's data, with
    a note."""
    from omegaconf import OmegaConf, open_dict

    if data_given_on_command_line():
        return
    record = recorded_data(ckpt)
    if record is None:
        log.info("%s does not record the data it was trained on (written by an older version): "
                 "evaluating on data=%s; pass data=... to choose", ckpt,
                 cfg.data.get("_target_", "?").rsplit(".", 1)[-1])
        return
    with open_dict(cfg):
        cfg.data = OmegaConf.create(record)
    log.info("Evaluating on the data the run was trained with (%s%s); pass data=... for other "
             "data", record["_target_"].rsplit(".", 1)[-1],
             f", root={cfg.data.root}" if cfg.data.get("root") else "")


__all__ = [
    "RESULTS",
    "claim_run_folder",
    "data_given_on_command_line",
    "existing_results",
    "recorded_data",
    "remove_results",
    "use_recorded_data",
]
