"""Name registry for backbones and their pretrained weights (timm's pattern, kept small).

Backbone keys use no dots (``sapiens_0_3b``); pretrained variants are ``arch.tag``. Meta's dotted
spellings (``sapiens_0.3b``) are accepted through an alias map.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from sapiens_kit.models._pretrained import PretrainedCfg

BackboneFn = Callable[..., nn.Module]

_BACKBONES: dict[str, BackboneFn] = {}
_PRETRAINED: dict[str, PretrainedCfg] = {}
_ALIASES: dict[str, str] = {}


def register_backbone(fn: BackboneFn) -> BackboneFn:
    """Register a builder under its function name."""
    _BACKBONES[fn.__name__] = fn
    return fn


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
    _ensure_loaded()
    return sorted(_BACKBONES)


def list_pretrained(arch: str | None = None) -> list[str]:
    """Registered ``arch.tag`` weight names, optionally for one architecture."""
    _ensure_loaded()
    return sorted(k for k in _PRETRAINED if arch is None or k.split(".")[0] == arch)


def get_pretrained_cfg(name: str) -> PretrainedCfg:
    """Metadata for ``arch.tag``, or the architecture's default entry for a bare ``arch``."""
    _ensure_loaded()
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
    _ensure_loaded()
    arch, dot, tag = weights.partition(".")
    return bool(dot) and f"{_ALIASES.get(arch, arch)}.{tag}" in _PRETRAINED


def create_backbone(
    name: str,
    weights: str | None = None,
    img_size: tuple[int, int] = (1024, 768),
    **overrides: Any,
) -> nn.Module:
    """Build a registered backbone and optionally load weights into it.

    Args:
        name: A registered backbone (see :func:`list_backbones`) or one of Meta's aliases.
        weights: ``None`` for random init, a registered ``arch.tag``, a local checkpoint path,
            ``ckpt:<path>`` or ``hf-hub:<org>/<repo>/<file>``.
        img_size: ``(H, W)`` the position-embedding grid is built (and checkpoints resampled) for.
        **overrides: Architecture keyword overrides, e.g. ``patch_padding=2`` or ``depth=4``.

    Returns:
        A module whose ``forward(x)`` maps ``(B, 3, H, W)`` to a ``(B, D, H/16, W/16)`` feature map.
    """
    _ensure_loaded()
    model = _BACKBONES[canonical_name(name)](img_size=tuple(img_size), **overrides)
    if weights:
        model.load_weights(weights)
    return model


def _ensure_loaded() -> None:
    # Importing the family modules runs their @register_backbone decorators.
    from sapiens_kit.models import sapiens, sapiens2  # noqa: F401
