"""Lightning callbacks of the kit (EMA of weights, non-finite loss guard, the checkpoints a run
always leaves and the data it records)."""

from sapiens_kit.callbacks.checkpoints import DATA_KEY, FinalCheckpoints, RecordData
from sapiens_kit.callbacks.ema import EMA
from sapiens_kit.callbacks.guards import NonFiniteLossError, NonFiniteLossGuard

__all__ = [
    "DATA_KEY",
    "EMA",
    "FinalCheckpoints",
    "NonFiniteLossError",
    "NonFiniteLossGuard",
    "RecordData",
]
