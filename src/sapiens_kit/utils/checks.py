"""Checks of a composed config made before anything is built, so a mistake on the command line
is reported in a second as one line naming the key, not as a traceback minutes later.

Each check looks only at keys the config has (``img_size``, ``ckpt_path``, ...), so one list of
checks serves every command.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sapiens_kit.errors import UserError

log = logging.getLogger("sapiens_kit")

#: Side of a Sapiens patch: the input height and width must be multiples of it.
PATCH_SIZE = 16


def _sizes_near(side: int, step: int = PATCH_SIZE) -> tuple[int, int]:
    """The multiples of ``step`` nearest to ``side``: ``(nearest, the other neighbour)``."""
    low = max(step, side // step * step)
    high = low + step if low < side else low
    return (low, high) if side - low <= high - side else (high, low)


def check_img_size(size: Any, key: str = "img_size") -> tuple[int, int]:
    """``(H, W)`` of ``size``, refusing sizes the patch grid cannot tile.

    Raises:
        UserError: If ``size`` is not two positive multiples of 16; names the nearest sizes.
    """
    try:
        height, width = (int(s) for s in size)
        if any(float(s) != int(s) for s in size):
            raise ValueError
    except (TypeError, ValueError):
        raise UserError(f"{key}={_text(size)}: give the input size as two integers, "
                        f"{key}=[H,W] (e.g. {key}=[1024,768])") from None
    if height > 0 and width > 0 and height % PATCH_SIZE == 0 and width % PATCH_SIZE == 0:
        return height, width
    near_h, far_h = _sizes_near(max(height, 1))
    near_w, far_w = _sizes_near(max(width, 1))
    others = {f"[{h},{w}]" for h in (near_h, far_h) for w in (near_w, far_w)} - {
        f"[{near_h},{near_w}]"}
    raise UserError(f"{key}=[{height},{width}]: height and width must be multiples of "
                    f"{PATCH_SIZE} (the patch size): use {key}=[{near_h},{near_w}] "
                    f"(or {', '.join(sorted(others))})")


def _text(value: Any) -> str:
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    return str(value).replace(" ", "")


def check_missing(cfg: DictConfig) -> None:
    """Refuse mandatory values (``???``) left unset, e.g. ``data.root`` of ``data=mask_folder``.

    Raises:
        UserError: Naming every unset key and how to set it.
    """
    missing = sorted(OmegaConf.missing_keys(cfg))
    if not missing:
        return
    example = " ".join(f"{k}=..." for k in missing)
    verb = "is" if len(missing) == 1 else "are"
    raise UserError(f"{', '.join(missing)} {verb} not set: give {example} on the command line")


def check_config_sizes(cfg: DictConfig) -> None:
    """Check ``img_size`` (top level, when set) up front."""
    size = cfg.get("img_size") if "img_size" in cfg else None
    if size is not None and not OmegaConf.is_missing(cfg, "img_size"):
        check_img_size(size)


def _number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def wrong_types(cfg: DictConfig, overrides: Sequence[str], defaults: DictConfig | None,
                floats_only: bool = True) -> list[str]:
    """Command-line values that cannot be meant: text given for a key whose default is a number.

    Args:
        cfg: The composed config (overrides applied).
        overrides: The command-line overrides (``key=value``).
        defaults: The config composed without those text values.
        floats_only: Only keys whose default is a float (``model.lr``): integer keys such as
            ``trainer.devices`` also take words (``auto``).

    Returns:
        One ``key=value: ...`` description per suspicious override.
    """
    found = []
    for key, value in _text_overrides(cfg, overrides):
        default = OmegaConf.select(defaults, key, default=None) if defaults is not None else None
        if isinstance(default, bool) or not isinstance(default, int | float):
            continue
        if floats_only and not isinstance(default, float):
            continue
        if not _number(value):
            found.append(f"{key}={value}: {key} takes a number (default {default})")
    return found


def _text_overrides(cfg: DictConfig, overrides: Sequence[str]) -> list[tuple[str, str]]:
    """``(key, value)`` of the plain ``key=value`` overrides whose composed value is text."""
    pairs = []
    for override in overrides:
        key, sep, _ = override.partition("=")
        if not sep or key.startswith(("+", "~")) or key.startswith("hydra.") or "@" in key:
            continue
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if isinstance(value, str):
            pairs.append((key, value))
    return pairs


def config_without(config_name: str, overrides: Sequence[str], drop: set[str]) -> DictConfig | None:
    """The config composed with ``overrides`` minus the keys in ``drop`` (inside a running Hydra
    app); ``None`` if that cannot be composed."""
    from hydra import compose

    kept = [o for o in overrides if o.partition("=")[0] not in drop]
    try:
        return compose(config_name=config_name, overrides=kept)
    except Exception:  # the check is a courtesy: never fail a run because of it
        log.debug("could not compose %s without %s", config_name, drop, exc_info=True)
        return None


def check_value_types(cfg: DictConfig, floats_only: bool = True) -> None:
    """Refuse text given for a number (``model.lr=abc``), before anything is built.

    Raises:
        UserError: Naming the key and its default.
    """
    from hydra.core.hydra_config import HydraConfig

    try:
        hydra_cfg = HydraConfig.get()
    except ValueError:  # composed outside a Hydra app
        return
    overrides = list(hydra_cfg.overrides.task)
    texts = _text_overrides(cfg, overrides)
    if not texts:
        return
    defaults = config_without(str(hydra_cfg.job.config_name), overrides,
                              {key for key, _ in texts})
    if found := wrong_types(cfg, overrides, defaults, floats_only=floats_only):
        raise UserError("; ".join(found))


#: ``ckpt_path=`` values Lightning resolves itself (no file to check).
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")


def check_resume(cfg: DictConfig) -> None:
    """Refuse ``ckpt_path=`` (resume) of another task's run before training starts.

    Raises:
        UserError: If the file is not a sapiens_kit checkpoint, or is another task's.
    """
    ckpt = cfg.get("ckpt_path") if "ckpt_path" in cfg else None
    target = (cfg.get("model") or {}).get("_target_")
    if not ckpt or not target or str(ckpt) in LIGHTNING_CKPT_NAMES:
        return
    from sapiens_kit.tasks.registry import checkpoint_task_class, load_class, task_key

    path = Path(str(ckpt)).expanduser()
    if not path.exists():
        raise UserError(f"ckpt_path={ckpt}: checkpoint file does not exist")
    if path.is_dir():
        return  # a sharded (FSDP) checkpoint folder: Lightning reads it
    stored = checkpoint_task_class(path)
    if stored is None:
        return
    running = load_class(str(target))
    if task_key(stored) != task_key(running):
        raise UserError(
            f"ckpt_path={ckpt}: this checkpoint is a '{task_key(stored)}' run, but this run "
            f"trains task '{task_key(running)}': resume it with task={task_key(stored)} (and "
            "its other settings), or drop ckpt_path= to start a new run")


#: Checks every command runs on its composed config, in order, before building anything.
CONFIG_CHECKS = (check_missing, check_config_sizes, check_value_types, check_resume)


def check_config(cfg: DictConfig) -> None:
    """Run :data:`CONFIG_CHECKS`."""
    for check in CONFIG_CHECKS:
        check(cfg)


__all__ = [
    "CONFIG_CHECKS",
    "PATCH_SIZE",
    "check_config",
    "check_config_sizes",
    "check_img_size",
    "check_missing",
    "check_resume",
    "check_value_types",
    "wrong_types",
]
