"""Plain image lists for prediction (moved to :mod:`.predict_inputs`; kept importable here)."""

from sapiens_kit.data.datasets.predict_inputs import ImageListDataset

__all__ = ["ImageListDataset"]
