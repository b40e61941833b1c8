"""The image pipeline of ``predict``: stream the photos under ``input=``, detect people once per
image (in batches, only for tasks that need person boxes), run the model batched across people
and images, and write each photo's files as soon as all of its samples are predicted.

decode -> detect -> the task's ``predict_dataset`` samples -> ``trainer.predict`` ->
:class:`IncrementalWriter` -> :meth:`PredictionOutput.commit` (atomic, resumable).
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from sapiens_kit.data.collate import collate
from sapiens_kit.data.io import DataFileError, image_problem, read_rgb
from sapiens_kit.inference.inputs import image_id, is_image, relative, walk_inputs
from sapiens_kit.inference.outputs import PredictionOutput

log = logging.getLogger("sapiens_kit")

#: Images the stream takes at a time (times the detector's batch size, at least the batch size).
CHUNK_BATCHES = 2
#: Threads that decode the next chunks while the detector and the model run.
DECODE_THREADS = 2


class ImageStream(IterableDataset[dict[str, Any]]):
    """The prediction samples of the images still to do, a chunk of images at a time.

    Each sample's ``meta`` gains ``rel`` (the path under ``input=``, where its files go),
    ``image_id`` and ``n_samples`` (how many samples its image has: one per person for pose), so
    that the writer knows when an image is whole whatever order the batches come in. Images
    whose outputs are complete (resume) and unreadable ones are left out; an image that fails
    to decode is recorded as failed. With several loader workers or processes (``devices=``)
    each takes every N-th chunk.

    With ``batch_size`` it yields collated batches cut inside each chunk (the last one of a
    chunk may be short), so a batch holds the same samples whichever process or worker runs the
    chunk: ``devices=N`` gives the files of a one-process run to the bit, for any batch size.

    Args:
        root: ``input=``.
        task: The task (its ``predict_dataset``).
        output: The output folder (completeness, failures).
        options: The task's prediction options (``bboxes=``, ``mask_dir=``, ``padding=``).
        detector: Finds the people of each image, or ``None`` (the task needs no boxes).
        ids: ``file name -> image id`` from an annotation file (else stable ids).
        chunk: Images per chunk.
        batch_size: Samples per collated batch (``None``: single samples).
    """

    def __init__(self, root: Path, task: Any, output: PredictionOutput,
                 options: Mapping[str, Any], detector: Any, ids: Mapping[str, int],
                 chunk: int, batch_size: int | None = None) -> None:
        self.root, self.task, self.output = root, task, output
        self.options, self.detector, self.ids, self.chunk = dict(options), detector, ids, chunk
        self.batch_size = batch_size

    def images(self) -> Iterator[tuple[Path, Path]]:
        """``(path, rel)`` of every image, done or not: the chunks must not depend on what other
        processes have finished meanwhile."""
        for path in walk_inputs(self.root):
            if is_image(path):
                yield path, relative(path, self.root)

    def todo(self, chunk: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
        """The images of ``chunk`` whose outputs are not complete yet (resume)."""
        out = []
        for path, rel in chunk:
            if self.output.is_complete(rel):
                self.output.resumed += 1
            else:
                out.append((path, rel))
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # Chunk i goes to one loader worker of one process: each input is done exactly once.
        worker = get_worker_info()
        workers, wid = (1, 0) if worker is None else (worker.num_workers, worker.id)
        rank, world = shard()
        mine, every = rank * workers + wid, world * workers
        images = self.images()
        chunks = (todo for index, chunk in enumerate(iter(lambda: list(islice(images, self.chunk)),
                                                          []))
                  if index % every == mine and (todo := self.todo(chunk)))
        if self.detector is None:  # the dataset decodes (in the loader workers, if any)
            for chunk in chunks:
                yield from self._batches(self._chunk([(p, rel, None) for p, rel in chunk]))
            return
        # With a detector the stream runs in the main process: threads decode the next chunks
        # while the model and the detector work on this one.
        with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="sapiens_kit_decode") as pool:
            ahead: deque[list[Future[tuple[Path, Path, Any]]]] = deque()
            for chunk in chunks:
                ahead.append([pool.submit(self._decode, p, rel) for p, rel in chunk])
                if len(ahead) > 1:
                    yield from self._batches(self._chunk([f.result() for f in ahead.popleft()]))
            while ahead:
                yield from self._batches(self._chunk([f.result() for f in ahead.popleft()]))

    def _batches(self, samples: Iterator[dict[str, Any]]) -> Iterator[Any]:
        """One chunk's samples, collated ``batch_size`` at a time (or one by one)."""
        if self.batch_size is None:
            yield from samples
            return
        while batch := list(islice(samples, self.batch_size)):
            yield collate(batch)

    @staticmethod
    def _decode(path: Path, rel: Path) -> tuple[Path, Path, Any]:
        """``(path, rel, RGB array)``; in place of the array, why the image is unusable: a
        ``str`` (bad header: skipped) or a ``DataFileError`` (failed to decode)."""
        if (problem := image_problem(path)) is not None:
            return path, rel, problem
        try:
            return path, rel, read_rgb(path)
        except DataFileError as err:
            return path, rel, err

    def _chunk(self, chunk: list[tuple[Path, Path, Any]]) -> Iterator[dict[str, Any]]:
        """The samples of one chunk; ``chunk`` holds ``(path, rel, decoded)``, where
        ``decoded`` is ``None`` (not decoded yet) or what :meth:`_decode` gave."""
        readable: list[tuple[Path, Path]] = []
        decoded: list[Any] = []
        for path, rel, image in chunk:
            if image is None:
                image = "" if (problem := image_problem(path)) is None else problem
            if isinstance(image, str) and image:
                log.warning("%s: unreadable image, skipped", path)
            elif isinstance(image, DataFileError):
                self.output.fail(rel, str(image))
            else:
                readable.append((path, rel))
                decoded.append(image)
        options = dict(self.options)
        if self.detector is not None:
            step = max(1, int(getattr(self.detector, "batch_size", 1) or 1))
            found = []
            for start in range(0, len(readable), step):  # one detector forward per batch
                found += self.detector.detect(decoded[start : start + step],
                                              [str(p) for p, _ in readable[start : start + step]])
            options["detections"] = {str(p): d for (p, _), d in zip(readable, found,
                                                                       strict=True)}
            # The crops are cut from these arrays: each photo is decoded once.
            options["decoded"] = {str(p): image for (p, _), image in zip(readable, decoded,
                                                                          strict=True)}
        del decoded
        if not readable:
            return
        rels = {str(p): rel for p, rel in readable}
        dataset = self.task.predict_dataset([p for p, _ in readable], **options)
        for i in range(len(dataset)):
            try:
                sample = dataset[i]
            except DataFileError as err:  # decoding failed although the header looked fine
                name = next((k for k in rels if str(err).startswith(f"{k}:")), None)
                if name is None:
                    raise
                self.output.fail(rels.pop(name), str(err))
                continue
            meta = sample["meta"]
            if meta["path"] not in rels:  # its image failed on an earlier sample
                continue
            rel = rels[meta["path"]]
            meta["rel"] = rel.as_posix()
            meta["image_id"] = image_id(rel, self.ids)
            meta.setdefault("n_samples", 1)
            yield sample


class IncrementalWriter(BasePredictionWriter):
    """Gathers each image's predictions and writes its files as soon as it is whole.

    The files are written by a few background threads while the model runs on the next
    batches; at most ``2 * threads`` images wait to be written (bounded memory), and an error
    in a thread stops the run at the next batch.
    """

    def __init__(self, task: Any, output: PredictionOutput, threads: int = 2) -> None:
        super().__init__(write_interval="batch")
        self.task, self.output, self.threads = task, output, threads
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.images = 0
        self._pool: ThreadPoolExecutor | None = None  # made in each process (not picklable)
        self._jobs: deque[Future[None]] = deque()

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start the writing threads."""
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="sapiens_kit_write")

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           prediction: Any, batch_indices: Any, batch: Any, batch_idx: int,
                           dataloader_idx: int = 0) -> None:
        """Add the batch's items; hand every image whose samples are all in to a thread."""
        for item in prediction:
            meta = item["meta"]
            items = self.pending.setdefault(meta["path"], [])
            items.append(item)
            if len(items) == int(meta.get("n_samples", 1)):
                self.submit(self.pending.pop(meta["path"]))

    def submit(self, items: list[dict[str, Any]]) -> None:
        """Write one image's files in the background (in this thread without a pool)."""
        if self._pool is None:
            self.write(items)
            return
        while len(self._jobs) >= 2 * self.threads or (self._jobs and self._jobs[0].done()):
            self._jobs.popleft().result()  # re-raises a thread's error here
        self._jobs.append(self._pool.submit(self.write, items))

    def write(self, items: list[dict[str, Any]]) -> None:
        """The files of one image, committed to the output."""
        rel = Path(items[0]["meta"]["rel"])
        with self.output.scratch() as scratch:
            self.task.save_predictions([items], scratch)
            self.output.commit(rel, scratch, {})
        self.images += 1

    def drain(self) -> None:
        """Wait for every write (their errors raised), and stop the threads."""
        try:
            while self._jobs:
                self._jobs.popleft().result()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """All batches are in: finish writing."""
        self.drain()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        """Let the writes under way finish (whole files) before the error goes on."""
        self._jobs.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def device_of(accelerator: str) -> str:
    """The torch device ``accelerator=`` means for the detector."""
    if accelerator in ("cpu",):
        return "cpu"
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


#: ``precision=`` spellings of predict -> Lightning's.
PRECISIONS = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}


def precision_of(value: Any, accelerator: str) -> str:
    """Lightning's precision for ``precision=`` (``32``, ``bf16``, ``16`` or a Lightning
    spelling); ``None`` picks bf16 on a GPU that supports it, else 32."""
    from sapiens_kit.errors import UserError

    if value is None or str(value) == "auto":
        cuda = device_of(accelerator) == "cuda"
        return "bf16-mixed" if cuda and torch.cuda.is_bf16_supported() else "32-true"
    value = str(value)
    if value in PRECISIONS:
        return PRECISIONS[value]
    if value in PRECISIONS.values() or value in ("bf16-true", "16-true", "64-true"):
        return value
    raise UserError(f"precision={value}: use 32, bf16 or 16 (or null: bf16 on GPUs that "
                    "support it, else 32)")


def trainer_options(cfg: Any) -> dict[str, Any]:
    """The Lightning ``Trainer`` arguments of ``predict``: accelerator, ``devices=``,
    ``num_nodes=``, ``precision=``. Several processes use ``ddp_spawn``: the run's own process
    keeps the output folder and writes ``results.json`` and ``summary.json`` once they are all
    done (each process writes the files of the inputs it was given)."""
    devices = cfg.get("devices") or 1
    nodes = int(cfg.get("num_nodes") or 1)
    several = nodes > 1 or str(devices) in ("-1", "auto") or (
        isinstance(devices, int) and devices > 1) or not isinstance(devices, int)
    options: dict[str, Any] = {
        "accelerator": cfg.accelerator, "devices": devices, "num_nodes": nodes,
        "precision": precision_of(cfg.get("precision"), str(cfg.accelerator)),
        "logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    if several:
        options["strategy"] = cfg.get("strategy") or "ddp_spawn"
    return options


def compile_task(task: Any) -> None:
    """``compile=true``: compile the backbone and the head in place (their state-dict keys
    stay); the first batches of each new shape take longer."""
    task.backbone.compile()
    task.head.compile()


def shard() -> tuple[int, int]:
    """``(rank, world size)`` of this process in a multi-process predict, else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def make_detector(task: Any, cfg: Any) -> Any:
    """The person detector for ``task``, or ``None`` when the task needs no person boxes.

    A config without a ``detector`` node (composed before detectors existed) gives ``None``
    too: the task then reads ``bboxes=`` itself or uses each whole image.
    """
    if not getattr(task, "needs_person_boxes", False) or cfg.get("detector") is None:
        return None
    from sapiens_kit.detectors import (  # type: ignore[import-untyped,unused-ignore]
        build_detector,  # imported only when people are detected
    )

    return build_detector(cfg.detector, bboxes=cfg.get("bboxes"),
                          device=device_of(str(cfg.accelerator)))


def predict_images(task: Any, root: Path, output: PredictionOutput, cfg: Any,
                   options: Mapping[str, Any], detector: Any,
                   ids: Mapping[str, int], trainer_factory: Callable[..., L.Trainer]) -> int:
    """Predict every image under ``root`` not done yet; returns how many were written now."""
    options = dict(options)
    if detector is not None:
        options.pop("bboxes", None)  # the detector reads them
        options["padding"] = float((cfg.get("detector") or {}).get("padding") or 1.25)
    batch = int(cfg.batch_size)
    chunk = max(batch, int(getattr(detector, "batch_size", 0) or 0)) * CHUNK_BATCHES
    stream = ImageStream(root, task, output, options, detector, ids, chunk, batch_size=batch)
    workers = int(cfg.num_workers)
    if detector is not None and workers:
        log.info("num_workers=%d ignored: the person detector runs in the main process",
                 workers)
        workers = 0
    # the stream batches within its chunks (see ImageStream): the loader only passes them on
    loader = DataLoader(stream, batch_size=None, num_workers=workers)
    writer = IncrementalWriter(task, output)
    trainer = trainer_factory(callbacks=[writer])
    with warnings.catch_warnings():  # images stream in: there are no batch indices
        warnings.filterwarnings("ignore", message=".*infer the batch indices")
        warnings.filterwarnings("ignore", message=".*does not have many workers")
        trainer.predict(task, dataloaders=loader, return_predictions=False)
    if writer.pending:  # cannot happen unless a task drops samples: say so
        raise RuntimeError(f"{len(writer.pending)} image(s) got fewer predictions than "
                           "samples: " + ", ".join(list(writer.pending)[:3]))
    return writer.images


__all__ = ["ImageStream", "IncrementalWriter", "compile_task", "device_of", "make_detector",
           "precision_of", "predict_images", "shard", "trainer_options"]
