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
    """Instantiate every ``_target_`` entry of a ``{name: cfg}`` group (callbacks, loggers);
    a target that needs a missing optional package fails first, as one line."""
    from hydra.utils import instantiate

    from sapiens_kit.utils.extras import check_targets

    if not cfg:
        return []
    check_targets(cfg)
    return [instantiate(c) for c in cfg.values() if c is not None and "_target_" in c]


def build_datamodule(cfg: DictConfig, img_size: Any = None) -> Any:
    """The data module of ``cfg.data``, resizing to the task's input size.

    The size has one owner, the task (``model.img_size``, set with ``img_size=[H,W]``); the data
    presets don't repeat it. ``img_size`` overrides it (``evaluate``: the checkpoint's size).
    """
    from hydra.utils import instantiate

    from sapiens_kit.utils.checks import check_img_size

    size = img_size if img_size is not None else cfg.model.img_size
    # Before any data is read: a size the patch grid cannot tile fails with one line here.
    return instantiate(cfg.data, _convert_="all", img_size=list(check_img_size(size)))


register_resolvers()
