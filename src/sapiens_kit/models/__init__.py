"""Backbones, weights and heads.

Importing this package imports every module of it, so each backbone family module's decorators
register its classes, sizes and weights (timm's pattern) and a new family is one new file; the
registry itself imports no family.
"""

import importlib
import pkgutil

from sapiens_kit.models import sapiens, sapiens2  # noqa: F401  (registers the families)
from sapiens_kit.models._builder import (
    WeightsSpec,
    create_backbone,
    load_pretrained,
    parse_weights,
    resolve_source,
)
from sapiens_kit.models._checkpoint import is_sharded_checkpoint, sharded_checkpoint_message
from sapiens_kit.models._pretrained import (
    PretrainedCfg,
    WeightsError,
    WeightsUnavailableError,
    hub_download,
    parse_hf_hub,
)
from sapiens_kit.models._registry import (
    block_layouts,
    get_pretrained_cfg,
    is_registered_weights,
    list_backbones,
    list_families,
    list_pretrained,
)
from sapiens_kit.models.backbone import Backbone, BlockLayout
from sapiens_kit.models.sapiens_model import SapiensModel

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and not _module.ispkg:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "Backbone",
    "BlockLayout",
    "PretrainedCfg",
    "SapiensModel",
    "WeightsError",
    "WeightsSpec",
    "WeightsUnavailableError",
    "block_layouts",
    "create_backbone",
    "get_pretrained_cfg",
    "hub_download",
    "is_registered_weights",
    "is_sharded_checkpoint",
    "list_backbones",
    "list_families",
    "list_pretrained",
    "load_pretrained",
    "parse_hf_hub",
    "parse_weights",
    "resolve_source",
    "sharded_checkpoint_message",
]
