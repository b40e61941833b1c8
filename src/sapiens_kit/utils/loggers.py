"""Logger factories."""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)


def wandb_is_logged_in() -> bool:
    """Whether W&B has credentials (env var or netrc), checked without any prompt or network."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        import netrc

        auth = netrc.netrc().authenticators("api.wandb.ai")
        return bool(auth and auth[2])
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_logger(**kwargs: Any) -> Any:
    """A Lightning ``WandbLogger``: online when logged in, offline (syncable later) otherwise.

    ``WANDB_MODE`` set by the user wins. Never prompts for a login.
    """
    from lightning.pytorch.loggers import WandbLogger

    os.environ.setdefault("WANDB_SILENT", "true")
    mode = os.environ.get("WANDB_MODE")
    if mode is None and not wandb_is_logged_in():
        kwargs.setdefault("offline", True)
        log.warning("W&B: not logged in, logging offline; sync later with `wandb sync`")
    if mode == "offline":
        kwargs.setdefault("offline", True)
    if kwargs.get("offline") and kwargs.get("log_model"):
        log.warning("W&B offline: checkpoints cannot be uploaded, log_model switched off")
        kwargs["log_model"] = False
    return WandbLogger(**kwargs)
