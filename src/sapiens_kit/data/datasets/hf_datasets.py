"""Moved to :mod:`sapiens_kit.data.export.hf` (it is an exporter, not a dataset); kept
importable here."""

from sapiens_kit.data.export.hf import (
    VAL_SPLITS,
    HFTask,
    export_dataset,
    export_split,
    load_splits,
    write_image,
)

__all__ = ["VAL_SPLITS", "HFTask", "export_dataset", "export_split", "load_splits",
           "write_image"]
