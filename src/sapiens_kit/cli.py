"""Console script ``sapiens-kit <train|evaluate|predict|export> [hydra overrides...]``."""

from __future__ import annotations

import difflib
import importlib
import sys

COMMANDS = ("train", "evaluate", "predict", "export")
USAGE = f"usage: sapiens-kit <{'|'.join(COMMANDS)}> [overrides...] (--help after a command)"


def main() -> None:
    """Dispatch to ``python -m sapiens_kit.<command>``; a missing or unknown command is one
    ``error:`` line and exit status 1, like every other mistake."""
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        if len(sys.argv) >= 2:
            print(USAGE)
            raise SystemExit(0)
        print(f"error: give a command; {USAGE}", file=sys.stderr)
        raise SystemExit(1)
    command = sys.argv[1]
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        print(f"error: unknown command '{command}' ({hint}choose from {', '.join(COMMANDS)})",
              file=sys.stderr)
        raise SystemExit(1)
    sys.argv.pop(1)
    module = importlib.import_module(f"sapiens_kit.{command}")
    sys.argv[0] = f"sapiens-kit {command}"
    module.main()
