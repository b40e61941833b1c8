"""Where detector weights come from: a local file or folder, the usual caches, or a download.

``detector.weights`` is a Hugging Face repository id (``rtdetr``, ``detr``), a torchvision weights
name (``torchvision``), a local file (``.safetensors``, ``.pth``, ``.pt``, ``.bin``) or folder,
or ``null`` for random weights (tests and offline demos). The caches are read first and touch no
network; offline with nothing cached, the one error names what was looked for and how to pass a
file instead, within seconds (no download retries).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sapiens_kit.errors import UserError
from sapiens_kit.utils.network import host_reachable, hub_endpoint, hub_offline, hub_reachable

T = TypeVar("T")

#: File endings read as a state dict.
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


def local_path(spec: str) -> Path | None:
    """``spec`` as a local path when it names one (it exists, or it is spelled like a path or a
    weights file), else ``None`` (a repository id or a weights name).

    A path-like spelling that does not exist is a :class:`UserError`, not a download attempt.
    """
    path = Path(spec).expanduser()
    if path.exists():
        return path
    if spec.startswith(("/", ".", "~")) or spec.lower().endswith(WEIGHT_SUFFIXES) \
            or spec.count("/") > 1 or (os.sep != "/" and os.sep in spec):
        raise UserError(f"detector.weights={spec}: no such file or folder")
    return None


def read_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of a ``.safetensors`` file or a torch pickle (read with ``weights_only``);
    a ``{"model": ...}`` or ``{"state_dict": ...}`` wrapper is unpacked."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        import torch

        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file fails in many ways
        raise UserError(f"detector.weights={path}: cannot read it as weights "
                        f"({type(err).__name__}: {err})") from err
    for key in ("model", "state_dict"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict):
        raise UserError(f"detector.weights={path}: holds a {type(data).__name__}, not a state dict")
    return data


def load_into(model: Any, state: dict[str, Any], path: str | Path) -> None:
    """Load ``state`` into ``model`` strictly, allowing only the missing keys whose tensor is
    shared with a loaded one (tied weights, which ``save_pretrained`` stores once)."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise UserError(f"detector.weights={path}: does not fit this detector's architecture "
                        f"({str(err).splitlines()[0]} ...); pass the same detector.config it was "
                        "saved with") from None
    params = model.state_dict()
    loaded = {params[k].data_ptr() for k in state if k in params}
    missing = [k for k in missing if params[k].data_ptr() not in loaded]
    if missing or unexpected:
        raise UserError(f"detector.weights={path}: does not fit this detector's architecture "
                        f"(missing {missing[:3]}, unexpected {list(unexpected)[:3]}); pass the "
                        "same detector.config it was saved with")


def offline_error(what: str, cache: str | Path, reason: str) -> UserError:
    """The one error for weights that are neither cached nor downloadable."""
    return UserError(
        f"detector weights {what} are not in the local cache ({cache}) and cannot be downloaded "
        f"({reason}): download them where the network is reachable, or pass a local file or "
        "folder with `detector.weights=<path>`, or run without a detector (`detector=none`, or "
        "`bboxes=<file>` with your own boxes)")


def from_hub(load: Callable[..., T], repo: str) -> T:
    """``load(repo, local_files_only=..., cache_dir=...)`` (a ``from_pretrained``): the Hugging
    Face cache (``HF_HUB_CACHE``) first, then a download only when the hub is reachable and
    ``HF_HUB_OFFLINE`` is unset."""
    from huggingface_hub import constants


    try:
        return load(repo, local_files_only=True, cache_dir=constants.HF_HUB_CACHE)
    except OSError:
        pass
    what = f"'{repo}' (Hugging Face repository)"
    if hub_offline():
        raise offline_error(what, constants.HF_HUB_CACHE, "HF_HUB_OFFLINE is set")
    if not hub_reachable():
        raise offline_error(what, constants.HF_HUB_CACHE, f"{hub_endpoint()} does not answer")
    try:
        return load(repo, cache_dir=constants.HF_HUB_CACHE)
    except OSError as err:
        raise UserError(f"detector.weights={repo}: {str(err).splitlines()[0]}") from err


def from_torch_hub(url: str) -> dict[str, Any]:
    """The state dict at ``url``: torch hub's checkpoint cache first, else a download."""
    import torch

    cache = Path(torch.hub.get_dir()) / "checkpoints"
    cached = cache / Path(url).name
    if cached.is_file():
        return read_state_dict(cached)
    what = f"'{Path(url).name}' ({url})"
    if not host_reachable(url):
        raise offline_error(what, cache, f"{url.split('/')[2]} does not answer")
    try:
        return dict(torch.hub.load_state_dict_from_url(url, map_location="cpu",
                                                        weights_only=True))
    except Exception as err:  # network errors come in many classes
        raise offline_error(what, cache, f"{type(err).__name__}") from err


__all__ = ["WEIGHT_SUFFIXES", "from_hub", "from_torch_hub", "load_into",
           "local_path", "offline_error", "read_state_dict"]
