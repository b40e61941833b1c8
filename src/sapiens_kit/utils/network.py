"""Whether the network can be used, answered in seconds: weights are fetched from the Hugging
Face Hub (backbones, task weights, detectors) and torch hub (detectors), and on a machine without
network the download libraries retry for minutes before they give up."""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse


def hub_endpoint() -> str:
    """The Hugging Face endpoint in use (``HF_ENDPOINT``, read now, not at import)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for no network (read now, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "on", "yes", "true")


def host_reachable(url: str, timeout: float = 3.0) -> bool:
    """One quick TCP connection to ``url``'s host.

    The name lookup runs in a helper thread too: ``socket``'s timeout does not cover DNS, which
    can hang for tens of seconds on a machine without network.
    """
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, name="sapiens-kit-network-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint answers (:func:`host_reachable`)."""
    return host_reachable(hub_endpoint(), timeout)


__all__ = ["host_reachable", "hub_endpoint", "hub_offline", "hub_reachable"]
