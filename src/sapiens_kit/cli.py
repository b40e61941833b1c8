"""Console script ``sapiens-kit <train|evaluate|predict> [hydra overrides...]``."""

from __future__ import annotations

import importlib
import sys

COMMANDS = ("train", "evaluate", "predict", "export")


def main() -> None:
    """Dispatch to ``python -m sapiens_kit.<command>``."""
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: sapiens-kit <{'|'.join(COMMANDS)}> [overrides...]", file=sys.stderr)
        raise SystemExit(2)
    command = sys.argv.pop(1)
    try:
        module = importlib.import_module(f"sapiens_kit.{command}")
    except ModuleNotFoundError:
        print(f"error: '{command}' is not available in this version", file=sys.stderr)
        raise SystemExit(2) from None
    sys.argv[0] = f"sapiens-kit {command}"
    module.main()
