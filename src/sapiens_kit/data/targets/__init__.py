"""Dense (per-pixel) targets as small objects, and their registry.

Every module of this package is imported here, so a new target is one new file: a
:class:`DenseTarget` subclass decorated with :func:`register_target`. A target defined anywhere
else works too: pass the object (or a Hydra ``{_target_: ...}`` mapping) wherever a key is
accepted.
"""

from __future__ import annotations

import importlib
import pkgutil

from sapiens_kit.data.targets.base import (
    DenseTarget,
    PixelReport,
    TargetSpec,
    Transform,
    Validity,
    get_target,
    list_targets,
    register_target,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

from sapiens_kit.data.targets.depth import DepthTarget  # noqa: E402
from sapiens_kit.data.targets.normal import NormalTarget  # noqa: E402

__all__ = ["DenseTarget", "DepthTarget", "NormalTarget", "PixelReport", "TargetSpec",
           "Transform", "Validity", "get_target", "list_targets", "register_target"]
