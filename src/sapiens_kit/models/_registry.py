"""Name registry for backbones, their families and their pretrained weights (timm's pattern).

Backbone keys use no dots (``sapiens_0_3b``); pretrained variants are ``arch.tag``. Meta's dotted
spellings (``sapiens_0.3b``) are accepted through an alias map. The family modules register
themselves when ``sapiens_kit.models`` imports them; this module imports none of them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from torch import nn

from sapiens_kit.models._pretrained import PretrainedCfg
from sapiens_kit.models.backbone import BlockLayout

BackboneFn = Callable[..., nn.Module]
FamilyT = TypeVar("FamilyT", bound=type)

_BACKBONES: dict[str, BackboneFn] = {}
_PRETRAINED: dict[str, PretrainedCfg] = {}
_ALIASES: dict[str, str] = {}
_FAMILIES: list[type[nn.Module]] = []


def register_backbone(fn: BackboneFn) -> BackboneFn:
    """Register a builder under its function name, with its module's ``default_cfgs`` entries
    for that name (timm's ``register_model``: the table sits above the entry points)."""
    _BACKBONES[fn.__name__] = fn
    table = getattr(sys.modules[fn.__module__], "default_cfgs", {})
    register_pretrained({k: v for k, v in table.items() if v.arch == fn.__name__})
    return fn


def register_family(cls: FamilyT) -> FamilyT:
    """Register a backbone class, whose ``block_layout`` layer decay, LoRA and FSDP then read."""
    if cls not in _FAMILIES:
        _FAMILIES.append(cls)
    return cls


def list_families() -> list[type[nn.Module]]:
    """Every registered backbone class, in registration order."""
    return list(_FAMILIES)


def block_layouts() -> list[BlockLayout]:
    """The parameter naming of every registered family (see :class:`BlockLayout`)."""
    return [cls.block_layout for cls in _FAMILIES]  # type: ignore[attr-defined]


def register_pretrained(cfgs: dict[str, PretrainedCfg]) -> None:
    """Register ``arch.tag`` weight entries."""
    _PRETRAINED.update(cfgs)


def register_alias(alias: str, name: str) -> None:
    """Accept ``alias`` (e.g. Meta's ``sapiens_0.3b``) for the registered ``name``."""
    _ALIASES[alias] = name


def canonical_name(name: str) -> str:
    """Map an alias to its registered backbone name, raising a helpful error when unknown."""
    name = _ALIASES.get(name, name)
    if name not in _BACKBONES:
        raise ValueError(
            f"unknown backbone '{name}'. Available: {', '.join(list_backbones())}"
        )
    return name


def list_backbones() -> list[str]:
    """Names of every registered backbone architecture."""
    return sorted(_BACKBONES)


def list_pretrained(arch: str | None = None) -> list[str]:
    """Registered ``arch.tag`` weight names, optionally for one architecture."""
    return sorted(k for k in _PRETRAINED if arch is None or k.split(".")[0] == arch)


def get_pretrained_cfg(name: str) -> PretrainedCfg:
    """Metadata for ``arch.tag``, or the architecture's default entry for a bare ``arch``."""
    if name in _PRETRAINED:
        return _PRETRAINED[name]
    arch, _, tag = name.partition(".")
    arch = canonical_name(arch)
    if tag:
        key = f"{arch}.{tag}"
        if key not in _PRETRAINED:
            raise ValueError(
                f"unknown weights '{name}'. Registered for {arch}: {list_pretrained(arch)}"
            )
        return _PRETRAINED[key]
    for key, cfg in _PRETRAINED.items():
        if key.split(".")[0] == arch:
            return cfg
    return PretrainedCfg(arch=arch)


def is_registered_weights(weights: str) -> bool:
    """Whether ``weights`` names a registered ``arch.tag`` (as opposed to a path or hub id)."""
    arch, dot, tag = weights.partition(".")
    return bool(dot) and f"{_ALIASES.get(arch, arch)}.{tag}" in _PRETRAINED
