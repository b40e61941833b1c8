"""The command-line apps' Hydra entry point: :func:`hydra_app` is ``@hydra.main`` plus the kit's
error style.

- A user mistake, wherever it is found (composing the config, the checks made before anything
  is built, the job itself, wrapped in Hydra's instantiation error), ends the command with one
  ``error: ...`` line on stderr and exit status 1. ``SAPIENS_KIT_DEBUG=1`` (or Hydra's own
  ``HYDRA_FULL_ERROR=1``) shows the full traceback instead; a bug always shows it.
- A mistyped key names the closest keys of the composed config (never Hydra's ``+key`` hint,
  which would add an unused key); a wrong group option lists the options.
- A job that fails with a user mistake removes the run folder Hydra made for it when that holds
  nothing but Hydra's own files (``.hydra/``, the ``*.log``), so failed attempts leave no
  ``outputs/<date>/<time>/`` folders behind.

This module imports neither torch nor Lightning: ``--help`` and command-line mistakes are
answered before the job's heavy imports.
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sapiens_kit.utils.cli import debug_enabled, print_error, user_message
from sapiens_kit.utils.config import CONFIG_DIR

TaskFunction = Callable[[DictConfig], Any]


# ------------------------------------------------------------------------------ the decorator
def hydra_app(config_name: str) -> Callable[[TaskFunction], Callable[..., Any]]:
    """``@hydra.main(version_base="1.3", config_path=<the kit's conf>, config_name=...)`` with
    one-line user errors, the up-front config checks of :mod:`sapiens_kit.utils.checks`, and no
    empty run folder after a failure.

    The decorated ``main()`` runs the app from the command line; ``main(cfg)`` runs the job on a
    composed config, as with ``hydra.main``.
    """

    def decorate(job: TaskFunction) -> Callable[..., Any]:
        started = time.time()

        @functools.wraps(job)
        def task(cfg: DictConfig) -> Any:
            try:
                from sapiens_kit.utils.checks import check_config

                check_config(cfg)
                return job(cfg)
            except Exception as err:
                message = None if debug_enabled() else user_message(err)
                if message is None:
                    raise
                remove_empty_run_dir(since=started)
                print_error(message)
                raise SystemExit(1) from None

        @functools.wraps(job)
        def main(cfg_passthrough: DictConfig | None = None) -> Any:
            nonlocal started
            if cfg_passthrough is not None:
                return job(cfg_passthrough)
            import hydra

            started = time.time()
            run = hydra.main(version_base="1.3", config_path=CONFIG_DIR,
                             config_name=config_name)(task)
            try:
                with _hydra_raises():
                    return run()
            except Exception as err:
                if debug_enabled():
                    raise
                message = user_message(err) or composition_message(err, config_name,
                                                                   _overrides())
                if message is None:
                    raise
                print_error(message)
                raise SystemExit(1) from None

        return main

    return decorate


@contextmanager
def _hydra_raises() -> Iterator[None]:
    """Let exceptions out of Hydra's ``run_and_report`` (which prints its own multi-line report
    and exits) so that :func:`hydra_app` reports them in the kit's style."""
    import hydra._internal.utils as hydra_utils

    original = getattr(hydra_utils, "run_and_report", None)
    if original is None:  # another Hydra layout: keep its own reporting
        yield
        return
    hydra_utils.run_and_report = lambda func: func()
    try:
        yield
    finally:
        hydra_utils.run_and_report = original


def _overrides() -> list[str]:
    """The command-line overrides (arguments without a leading ``-``)."""
    return [a for a in sys.argv[1:] if not a.startswith("-")]


# ------------------------------------------------------------------------------ composition
_NO_KEY = re.compile(r"Could not override '([^']+)'")
_ALREADY = re.compile(r"Could not append to config\. An item is already at '([^']+)'")


def composition_message(err: BaseException, config_name: str,
                        overrides: Sequence[str]) -> str | None:
    """One line for an error Hydra raised while composing the config (a mistyped key or group
    option, an unparsable override), else ``None``."""
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    text = str(err)
    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        group, _, option = str(err.missing_cfg_file).rpartition("/")
        options = sorted(err.options or [])
        if group and options:
            close = difflib.get_close_matches(option, options, n=1)
            hint = f"did you mean {group}={close[0]}? " if close else ""
            return f"{group}={option}: no such {group} option ({hint}choose from " \
                   f"{', '.join(options)})"
    if match := _NO_KEY.search(text):
        key = match.group(1)
        return unknown_key_message(key, known_keys(config_name, overrides, bad=key), config_name)
    if match := _ALREADY.search(text):
        key = match.group(1)
        return f"+{key}: {key} already exists: set it without '+' ({key}=...)"
    if isinstance(err, OverrideParseException):
        reason = next((line.strip() for line in text.splitlines()
                       if line.strip() and not line.strip().startswith("See ")), "")
        culprit = _unparsable(overrides)
        what = f"{culprit}: cannot read this override" if culprit else "cannot read an override"
        return f"{what} ({reason}); quote values with brackets or spaces, e.g. 'img_size=[256,192]'"
    if isinstance(err, HydraException | OmegaConfBaseException):
        lines = [line.strip() for line in text.splitlines()
                 if line.strip() and not line.strip().startswith(("To append", "See http"))]
        return "; ".join(lines) or type(err).__name__
    return None


def unknown_key_message(key: str, keys: Sequence[str], config_name: str) -> str:
    """``key: no such key (did you mean ...?)`` with the closest of ``keys``."""
    close = closest_keys(key, keys)
    hint = f"did you mean {' or '.join(close)}?" if close else "no similar key"
    command = (sys.argv[0] if sys.argv and sys.argv[0].startswith("sapiens-kit")
               else f"python -m sapiens_kit.{config_name}")
    return f"{key}: no such key ({hint}); list the keys with: {command} --cfg job"


def closest_keys(key: str, keys: Sequence[str], n: int = 3) -> list[str]:
    """The keys of ``keys`` closest to the mistyped ``key``: siblings with a close name first
    (``model.lrr`` -> ``model.lr``), then close full paths (``modle.lr`` -> ``model.lr``)."""
    parent, _, leaf = key.rpartition(".")
    siblings = [k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == parent]
    close = [f"{parent}.{s}" if parent else s
             for s in difflib.get_close_matches(leaf, siblings, n=n, cutoff=0.6)]
    if close:
        return close
    # A mistyped parent (``modle.lr``): the closest full paths of the same depth.
    depth = key.count(".")
    same_depth = [k for k in keys if k.count(".") == depth]
    return difflib.get_close_matches(key, same_depth, n=n, cutoff=0.6)


def _unparsable(overrides: Sequence[str]) -> str | None:
    """The first override Hydra's grammar cannot read."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except Exception:
            return override
    return None


def known_keys(config_name: str, overrides: Sequence[str], bad: str | None = None) -> list[str]:
    """Every dotted key of the config composed from ``overrides`` (minus the ones that fail:
    ``bad`` and any other mistyped key), ``hydra.*`` included."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    kept = [o for o in overrides if o.lstrip("+~").partition("=")[0] != bad]
    for _ in range(len(kept) + 1):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
                cfg = compose(config_name=config_name, overrides=kept, return_hydra_config=True)
            return sorted(_dotted_keys(OmegaConf.to_container(cfg, resolve=False)))
        except Exception as err:
            match = _NO_KEY.search(str(err))
            failing = [o for o in kept if match and o.lstrip("+~").partition("=")[0] ==
                       match.group(1)]
            kept = [o for o in kept if o not in failing] if failing else []
        finally:
            GlobalHydra.instance().clear()
    return []


def _dotted_keys(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for name, value in node.items():
            key = f"{prefix}{name}"
            yield key
            yield from _dotted_keys(value, key + ".")


# ------------------------------------------------------------------------------ run folder
#: What Hydra itself writes into a run folder.
_HYDRA_DIR = ".hydra"


def remove_empty_run_dir(since: float) -> bool:
    """Remove the current Hydra run folder if it holds only Hydra's own files (``.hydra/``, the
    ``*.log``) and empty folders, all written since ``since`` (this command's start); then its
    parents that this left empty (``outputs/<date>``), never the working directory.

    Returns:
        Whether the folder was removed.
    """
    from hydra.core.hydra_config import HydraConfig

    try:
        run_dir = Path(HydraConfig.get().runtime.output_dir).resolve()
    except (ValueError, AttributeError):
        return False
    if not run_dir.is_dir() or run_dir == Path.cwd().resolve():
        return False
    since -= 2.0  # file systems with coarse timestamps
    files, folders = [], []
    for path in sorted(run_dir.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_symlink() or path.stat().st_mtime < since:
            return False
        relative = path.relative_to(run_dir)
        if path.is_dir():
            folders.append(path)
        elif relative.parts[0] == _HYDRA_DIR or (len(relative.parts) == 1
                                                and path.suffix == ".log"):
            files.append(path)
        else:
            return False  # results or anything else: keep the folder as it is
    _close_log_files(run_dir)
    for path in files:
        path.unlink()
    for folder in [*folders, run_dir]:
        try:
            folder.rmdir()
        except OSError:  # not empty after all (written meanwhile): keep it
            return False
    cwd = Path.cwd().resolve()
    for parent in run_dir.parents:
        if parent == cwd or cwd not in parent.parents or parent.stat().st_mtime < since:
            break
        try:
            parent.rmdir()
        except OSError:
            break
    return True


def _close_log_files(folder: Path) -> None:
    """Close the logging file handlers writing into ``folder`` (Hydra's job log)."""
    loggers = [logging.getLogger(), *(logger for logger in logging.root.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    for logger in loggers:
        for handler in list(logger.handlers):
            filename = getattr(handler, "baseFilename", None)
            if filename and folder in Path(filename).resolve().parents:
                handler.close()
                logger.removeHandler(handler)


__all__ = ["closest_keys", "composition_message", "hydra_app", "known_keys",
           "remove_empty_run_dir", "unknown_key_message"]
