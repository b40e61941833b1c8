"""The one path from a ``weights=`` string to a loaded backbone (timm's ``_builder``).

``weights=`` grammar, parsed only here (:func:`parse_weights`)::

    null                                   random initialisation
    <arch>.<tag>                           a registered entry (sapiens_1b.seg_goliath)
    /path/file.(pth|pt|bin|safetensors|ckpt)   a local file (also a Hub folder, for tasks)
    file:/path/...   ckpt:/path/run.ckpt   the same, with an explicit prefix
    hf-hub:<org>/<repo>[/<path/in/repo>]   a file in a Hugging Face repository (or the repo)

Every family loads through :func:`load_pretrained`: resolve the file, read it safely, split off
a head, map the backbone part with the family's ``filter_checkpoint`` and load it strictly, with
one readable report of missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from sapiens_kit.models._checkpoint import read_checkpoint, split_state_dict
from sapiens_kit.models._pretrained import (
    PretrainedCfg,
    WeightsError,
    existing_file,
    fetch_registered,
    hub_download,
)
from sapiens_kit.models._registry import (
    _ALIASES,
    _BACKBONES,
    canonical_name,
    get_pretrained_cfg,
    is_registered_weights,
)

log = logging.getLogger(__name__)

FilterFn = Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]


@dataclass(frozen=True)
class WeightsSpec:
    """A parsed ``weights=`` value.

    Attributes:
        kind: ``registered`` (an ``arch.tag`` entry), ``hf-hub`` or ``file``.
        name: The canonical ``arch.tag`` of a registered entry.
        repo_id: ``org/repo`` of an ``hf-hub:`` value.
        filename: The file inside the repository; ``None`` when only the repository is named.
        path: The local path of a ``file`` value (prefixes removed, ``~`` expanded).
    """

    kind: Literal["registered", "hf-hub", "file"]
    name: str = ""
    repo_id: str = ""
    filename: str | None = None
    path: Path | None = None

    def __str__(self) -> str:
        if self.kind == "registered":
            return self.name
        if self.kind == "hf-hub":
            return f"hf-hub:{self.repo_id}" + (f"/{self.filename}" if self.filename else "")
        return str(self.path)


def parse_weights(weights: str | Path | WeightsSpec | None) -> WeightsSpec | None:
    """Parse a ``weights=`` value (see the module docstring); ``None``/empty gives ``None``.

    Raises:
        WeightsError: An ``hf-hub:`` value without ``org/repo``.
    """
    if weights is None or isinstance(weights, WeightsSpec):
        return weights
    text = str(weights)
    if not text:
        return None
    if text.startswith("hf-hub:"):
        parts = text.removeprefix("hf-hub:").strip("/").split("/")
        if len(parts) < 2 or not all(parts[:2]):
            raise WeightsError(f"'{text}' must name a repository: hf-hub:<org>/<repo>[/<file>]")
        return WeightsSpec("hf-hub", repo_id="/".join(parts[:2]),
                           filename="/".join(parts[2:]) or None)
    if not isinstance(weights, Path) and is_registered_weights(text):
        arch, _, tag = text.partition(".")
        return WeightsSpec("registered", name=f"{_ALIASES.get(arch, arch)}.{tag}")
    return WeightsSpec("file", path=Path(text.removeprefix("ckpt:").removeprefix("file:"))
                       .expanduser())


def resolve_source(weights: str | Path | WeightsSpec, repo_file: str | None = None) -> Path:
    """Local file of a ``weights=`` value: the registered entry's file (cache, else download),
    the Hub file (cache, else download) or the local file.

    Args:
        weights: A ``weights=`` value or its parsed :class:`WeightsSpec`.
        repo_file: The file to take where only a Hub repository or a local folder is named
            (a shared task folder holds ``model.safetensors``); ``None``: such a value is an error.
    """
    spec = parse_weights(weights)
    if spec is None:
        raise WeightsError("no weights given")
    if spec.kind == "registered":
        return fetch_registered(get_pretrained_cfg(spec.name))
    if spec.kind == "hf-hub":
        filename = spec.filename or repo_file
        if filename is None:
            raise WeightsError(f"'{spec}' must name a file inside a repository: "
                               "hf-hub:<org>/<repo>/<file>")
        return hub_download(spec.repo_id, filename)
    assert spec.path is not None
    if repo_file is not None and spec.path.is_dir():
        return existing_file(spec.path / repo_file)
    return existing_file(spec.path)


def load_pretrained(
    model: nn.Module, weights: str | Path | WeightsSpec, filter_fn: FilterFn | None = None
) -> dict[str, torch.Tensor]:
    """Load ``weights`` strictly into the backbone ``model``.

    Args:
        model: A registered backbone (see ``models/backbone.py``).
        weights: A ``weights=`` value (see the module docstring).
        filter_fn: Maps the checkpoint's backbone part onto ``model``'s names; default: the
            family's ``model.filter_checkpoint``.

    Returns:
        The checkpoint's head part (prefix removed), empty for pretrain checkpoints, so a task can
        load it into its head.
    """
    spec = parse_weights(weights)
    if spec is None:
        raise WeightsError("no weights given")
    cfg: PretrainedCfg | None = get_pretrained_cfg(spec.name) if spec.kind == "registered" else None
    padding = int(getattr(model, "patch_padding", 0))
    if cfg is not None and cfg.task != "pretrain" and cfg.patch_padding != padding:
        log.warning("weights %s were trained with patch_padding=%d but the backbone uses %d",
                    spec, cfg.patch_padding, padding)
    path = resolve_source(spec)
    backbone_sd, head_sd = split_state_dict(read_checkpoint(path))
    if not backbone_sd:
        raise WeightsError(f"{path}: no backbone weights found in the checkpoint")
    mapping = filter_fn or model.filter_checkpoint
    try:
        load_state_dict_strict(model, mapping(backbone_sd))
    except WeightsError as err:
        raise WeightsError(f"{path}: {err}") from None
    log.info("loaded backbone weights from %s", path)
    return head_sd


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load an already mapped state dict; any missing, unexpected or mis-shaped key is an error
    listing them (``nn.Module.load_state_dict`` would stop at the first shape)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = sorted(k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape)
    if missing or unexpected or wrong:
        lines = [f"checkpoint does not match the {type(model).__name__} architecture"]
        if wrong:
            shown = [f"{k} {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                     for k in wrong[:5]]
            lines.append(f"shape mismatch ({len(wrong)}): " + "; ".join(shown))
        if missing:
            lines.append(f"missing keys ({len(missing)}): {', '.join(missing[:8])}")
        if unexpected:
            lines.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:8])}")
        raise WeightsError("\n  ".join(lines))
    model.load_state_dict(state_dict, strict=True)


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
        A :class:`~sapiens_kit.models.backbone.Backbone`: ``forward(x)`` maps ``(B, 3, H, W)`` to
        a ``(B, D, H/16, W/16)`` feature map.
    """
    model = _BACKBONES[canonical_name(name)](img_size=tuple(img_size), **overrides)
    if weights:
        load_pretrained(model, weights)
    return model
