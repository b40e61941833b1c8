"""sapiens_kit: fine-tune Meta's Sapiens human-vision foundation models.

The public names below are imported from :mod:`sapiens_kit.models` on first use, so importing a
light submodule (``sapiens_kit.errors``, the command-line apps before they run a job) does not
import torch and timm.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sapiens_kit.models import (
        PretrainedCfg,
        WeightsError,
        create_backbone,
        get_pretrained_cfg,
        list_backbones,
        list_pretrained,
    )

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_LAZY = {
    "PretrainedCfg": "sapiens_kit.models",
    "WeightsError": "sapiens_kit.models",
    "create_backbone": "sapiens_kit.models",
    "get_pretrained_cfg": "sapiens_kit.models",
    "list_backbones": "sapiens_kit.models",
    "list_pretrained": "sapiens_kit.models",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later reads skip this hook
        return value
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        # ``import sapiens_kit; sapiens_kit.models...`` kept working when the package imported
        # its models eagerly.
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "PretrainedCfg",
    "WeightsError",
    "__version__",
    "create_backbone",
    "get_pretrained_cfg",
    "list_backbones",
    "list_pretrained",
]
