"""Crash-safe, resumable prediction output.

Each input's files are written to a scratch folder inside the output and renamed into place as
soon as that input is done; a *done marker* (``.sapiens_kit/done/<input path>.json``) is written
last, atomically. An input is **complete** when its marker exists and every file it lists is
there. So a crash (even SIGKILL) leaves only whole files, and ``resume=true`` redoes exactly the
inputs without a marker (renaming over whatever an interrupted attempt left of them).

The marker also keeps what the run-wide files need: the input's COCO records (merged into the
root ``results.json``) and its ``summary.json`` entry, so :meth:`PredictionOutput.finish` rebuilds
both from the markers in input order, and a resumed run ends with the files of an
uninterrupted one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sapiens_kit.errors import UserError

#: The hidden folder (inside the output) that holds the markers and the scratch space.
STATE_DIR = ".sapiens_kit"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers (and a later
    resume) see the old file or the whole new one, never part of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_prediction_output(folder: Path) -> bool:
    """Whether ``folder`` was written by ``predict``: finished (its ``summary.json`` names the
    task) or interrupted (it holds done markers)."""
    if (folder / STATE_DIR / "done").is_dir():
        return True
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and "task" in summary and "skipped" in summary


class PredictionOutput:
    """The output folder of one ``predict`` run (see the module docstring).

    Args:
        root: The output folder (created when missing).
        task: The task's class name, recorded so that a resume with another task is refused.
        source: The input (``input=``, resolved), recorded for the same reason.
    """

    def __init__(self, root: Path, task: str, source: str | None = None) -> None:
        self.root = root
        self.task = task
        self.source = source
        self.state = root / STATE_DIR
        self.done_dir = self.state / "done"
        self.failed_dir = self.state / "failed"
        self.scratch_dir = self.state / "scratch"
        self.resumed = 0
        self.processed = 0
        self._lock = threading.Lock()  # commits come from the writing threads

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (``devices=N`` sends the output to each process): the lock stays."""
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- state
    def open(self) -> None:
        """Create the folders, drop what an interrupted run left in scratch, and refuse to
        resume another task's output."""
        shutil.rmtree(self.scratch_dir, ignore_errors=True)
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        self.done_dir.mkdir(parents=True, exist_ok=True)
        run = self.state / "run.json"
        if run.is_file():
            previous = json.loads(run.read_text())
            if previous.get("task") != self.task:
                raise UserError(f"{self.root}: holds the output of a {previous.get('task')} "
                                f"run, not {self.task}; resume it with that model, or choose "
                                "another output=")
            if self.source and previous.get("input") not in (None, self.source):
                raise UserError(f"{self.root}: holds the predictions of input="
                                f"{previous['input']}, not {self.source}; resume with that "
                                "input, or choose another output= (or overwrite=true)")
        else:
            write_atomic(run, json.dumps({"task": self.task, "input": self.source}))

    def _marker(self, rel: Path, folder: Path | None = None) -> Path:
        return (folder or self.done_dir) / f"{rel.as_posix()}.json"

    def record(self, rel: Path) -> dict[str, Any] | None:
        """The done marker of the input at ``rel`` when the input is complete, else ``None``."""
        try:
            record = json.loads(self._marker(rel).read_text())
        except (OSError, ValueError):
            return None
        if not all((self.root / f).exists() for f in record.get("files", [])):
            return None
        return record

    def is_complete(self, rel: Path) -> bool:
        """Whether the input at ``rel`` has all its files (see the module docstring)."""
        return self.record(rel) is not None

    # ---------------------------------------------------------------- writing one input
    @contextmanager
    def scratch(self) -> Iterator[Path]:
        """An empty folder for one input's files, removed afterwards."""
        folder = Path(tempfile.mkdtemp(dir=self.scratch_dir))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def commit(self, rel: Path, scratch: Path, record: dict[str, Any]) -> list[Path]:
        """Move the files of the input at ``rel`` from ``scratch`` beside where the input sits
        in the input tree, then write its done marker (last).

        A ``results.json`` the task wrote (its COCO records) goes into the marker instead.
        """
        results = scratch / "results.json"
        if results.is_file():
            record["results"] = json.loads(results.read_text())
            results.unlink()
        target = self.root / rel.parent
        target.mkdir(parents=True, exist_ok=True)
        moved: list[Path] = []
        for entry in sorted(scratch.iterdir()):
            dest = target / entry.name
            if entry.is_dir():  # a video's frame folder: replace what an earlier try left
                if dest.exists():
                    shutil.rmtree(dest)
                entry.rename(dest)
                moved += sorted(p for p in dest.rglob("*") if p.is_file())
            else:
                os.replace(entry, dest)
                moved.append(dest)
        record = {"input": rel.as_posix(), **record,
                  "files": [p.relative_to(self.root).as_posix() for p in moved]}
        self._marker(rel, self.failed_dir).unlink(missing_ok=True)
        write_atomic(self._marker(rel), json.dumps(record))
        with self._lock:
            self.processed += 1
        return moved

    def fail(self, rel: Path, reason: str) -> None:
        """Record that the input at ``rel`` failed (a later resume tries it again)."""
        write_atomic(self._marker(rel, self.failed_dir),
                     json.dumps({"input": rel.as_posix(), "reason": reason}))

    def failure(self, rel: Path) -> str | None:
        """Why the input at ``rel`` failed in this or an earlier run, else ``None``."""
        try:
            return str(json.loads(self._marker(rel, self.failed_dir).read_text())["reason"])
        except (OSError, ValueError, KeyError):
            return None

    # ---------------------------------------------------------------- the run-wide files
    def finish(self, inputs: Iterable[tuple[Path, Path]], seconds: float,
               unreadable: Any) -> list[Path]:
        """Write ``results.json`` (when any input has COCO records) and ``summary.json`` from
        the markers, in input order; ``inputs`` yields ``(path, rel)``, ``unreadable(path)``
        says why an image without a marker was skipped (``None``: it failed).

        Returns:
            The result files under the output (the hidden state folder left out).
        """
        from sapiens_kit.inference.inputs import is_video

        summary: dict[str, Any] = {"task": self.task, "images": 0, "done": 0, "skipped": [],
                                   "failed": [], "videos": []}
        results_tmp = self.state / "results.json.tmp"
        any_results = False
        with results_tmp.open("w") as out:
            out.write("[")
            first = True
            for path, rel in inputs:
                record = self.record(rel)
                if record is None:
                    reason = self.failure(rel)
                    if reason is None and not is_video(path):
                        reason = unreadable(path)
                        if reason is not None:
                            summary["skipped"].append({"path": str(path), "reason": reason})
                            continue
                    summary["failed"].append({"path": str(path),
                                              "reason": reason or "not predicted"})
                    continue
                summary["done"] += 1
                if "video" in record:
                    summary["videos"].append(record["video"])
                else:
                    summary["images"] += 1
                if "results" in record:
                    any_results = True
                    for entry in record["results"]:
                        out.write(("" if first else ",") + json.dumps(entry))
                        first = False
            out.write("]")
        if any_results:
            os.replace(results_tmp, self.root / "results.json")
        else:
            results_tmp.unlink()
        summary["counts"] = {"done": summary["done"], "skipped": len(summary["skipped"]),
                             "failed": len(summary["failed"])}
        # What this session did (differs between a resumed and an uninterrupted run).
        summary["run"] = {"seconds": round(seconds, 3), "processed": self.processed,
                          "resumed": self.resumed, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_atomic(self.root / "summary.json", json.dumps(summary, indent=2))
        shutil.rmtree(self.scratch_dir, ignore_errors=True)
        return sorted(p for p in self.root.rglob("*")
                      if p.is_file() and STATE_DIR not in p.relative_to(self.root).parts)


@contextmanager
def prediction_output(output: Path, task: str, overwrite: bool = False,
                      source: str | None = None) -> Iterator[PredictionOutput]:
    """The output folder for one run.

    With ``overwrite``, the earlier result set is moved aside first, deleted when this run
    finishes and put back if it fails (old and new files are never mixed). Otherwise an error
    keeps the inputs already done (``resume=true`` continues), and a run that completed nothing
    removes the folders it created.
    """
    output = output.resolve()
    created = [p for p in reversed([output, *output.parents]) if not p.exists()]
    old: Path | None = None
    if overwrite and output.is_dir() and any(output.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
        old.rmdir()
        output.rename(old)
    output.mkdir(parents=True, exist_ok=True)
    folder = PredictionOutput(output, task, source)
    try:
        folder.open()
        yield folder
    except BaseException:
        shutil.rmtree(folder.scratch_dir, ignore_errors=True)
        nothing_done = not any(folder.done_dir.rglob("*.json"))
        if old is not None:
            shutil.rmtree(output, ignore_errors=True)
            old.rename(output)
        elif nothing_done:
            shutil.rmtree(folder.state, ignore_errors=True)
            for path in reversed(created):
                if path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


__all__ = ["STATE_DIR", "PredictionOutput", "is_prediction_output", "prediction_output",
           "write_atomic"]
