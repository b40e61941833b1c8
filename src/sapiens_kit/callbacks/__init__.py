"""Lightning callbacks of the kit (EMA of weights, non-finite loss guard)."""

from sapiens_kit.callbacks.ema import EMA
from sapiens_kit.callbacks.guards import NonFiniteLossError, NonFiniteLossGuard

__all__ = ["EMA", "NonFiniteLossError", "NonFiniteLossGuard"]
