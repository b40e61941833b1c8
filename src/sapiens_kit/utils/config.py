"""Hydra/OmegaConf plumbing shared by the command-line apps."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: The config folder shipped inside the package (``conf/`` at the repo root links here).
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def asset_path(name: str) -> str:
    """Absolute path of a bundled asset folder (e.g. ``demo_seg``)."""
    return str(resources.files("sapiens_kit.assets").joinpath(name))


def register_resolvers() -> None:
    """Register ``${sk_asset:name}`` once per process."""
    if not OmegaConf.has_resolver("sk_asset"):
        OmegaConf.register_new_resolver("sk_asset", asset_path)


def instantiate_dict(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a ``{name: cfg}`` group (callbacks, loggers)."""
    from hydra.utils import instantiate

    if not cfg:
        return []
    return [instantiate(c) for c in cfg.values() if c is not None and "_target_" in c]


register_resolvers()
