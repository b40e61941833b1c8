"""Optional packages: check up front that a feature's packages are installed.

``pip install sapiens-kit`` (no extras) trains, evaluates, predicts and exports to TorchScript
and safetensors. A few features need packages that are not dependencies; each one checks for
them here *before* it writes anything, so a missing package is one ``error:`` line naming what
to install, and never a traceback halfway through a run or an empty output folder.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from sapiens_kit.errors import UserError

#: feature name -> (import names it needs, what to pip install).
FEATURES: dict[str, tuple[tuple[str, ...], str]] = {
    "ONNX export": (("onnx", "onnxruntime"), '"sapiens-kit[onnx]"'),
    "logger=tensorboard": (("tensorboard",), "tensorboard"),
}

#: Config ``_target_``s that need a feature of :data:`FEATURES` (checked by
#: :func:`check_targets` before anything is instantiated).
TARGET_FEATURES: dict[str, str] = {
    "lightning.pytorch.loggers.TensorBoardLogger": "logger=tensorboard",
    "lightning.pytorch.loggers.tensorboard.TensorBoardLogger": "logger=tensorboard",
}


def is_installed(module: str) -> bool:
    """Whether ``module`` (a top-level import name) can be imported, without importing it.

    A name set to ``None`` in :data:`sys.modules` (how Python marks a blocked import) counts as
    missing, like the import itself would.
    """
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(feature: str) -> None:
    """Raise :class:`~sapiens_kit.errors.UserError` naming what to install if ``feature``'s
    packages are missing (``feature`` is a key of :data:`FEATURES`)."""
    modules, install = FEATURES[feature]
    if not all(is_installed(m) for m in modules):
        raise UserError(f"{feature} needs: pip install {install}")


def check_targets(configs: Mapping[str, Any] | None) -> None:
    """:func:`require` the feature of every ``{name: cfg}`` entry whose ``_target_`` needs one
    (a Hydra group such as ``logger``)."""
    for cfg in (configs or {}).values():
        target = cfg.get("_target_") if isinstance(cfg, Mapping) else None
        if target in TARGET_FEATURES:
            require(TARGET_FEATURES[target])
