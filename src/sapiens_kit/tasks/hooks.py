"""The hooks through which the apps (predict, export, hub, the media callback) use a task
without knowing which one it is.

Each concrete task implements them in its own file; :class:`~sapiens_kit.tasks.base.BaseTask`
inherits this mixin, so a new task is a new file and no shared module changes. The shared
modules only ever call these methods and read these attributes:

=============================  ==============================================================
``key``                        the short task key (``seg``); see :mod:`sapiens_kit.tasks.registry`
``card_info``                  title, Hub pipeline tag and tag of the model card
``card_config()``              task facts for ``config.json`` (classes, keypoints)
``card_lines(config)``         task lines for the model card (class table, keypoint list)
``arguments_for_weights()``    constructor arguments for official/registered weights
``demo_data(root)``            a tiny data module config, for smoke tests and demos
``needs_person_boxes``         whether ``predict`` runs the person detector first (pose)
``smoothed_keys``              prediction entries smoothed over video frames (pose keypoints)
``predict_dataset(images)``    the prediction inputs for image files
``coco_records(predictions)``  COCO result records of one image's predictions (pose)
``save_predictions(...)``      the prediction files
``draw(image, predictions)``   one picture of one image's predictions
``set_draw_options(...)``      predict's ``draw.*`` options, read back with ``draw_option``
``media_pictures(batch, n)``   the W&B/TensorBoard pictures of a batch
``test_step``                  the test loop: the validation loop again
=============================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

if TYPE_CHECKING:
    import numpy as np

    from sapiens_kit.media import Picture
    from sapiens_kit.models import PretrainedCfg


class CardInfo(NamedTuple):
    """What a Hub model card says a task is."""

    #: Words for the card's first line ("A Sapiens model for **body-part segmentation**").
    title: str
    #: The Hub ``pipeline_tag`` (``image-segmentation``, ``keypoint-detection``, ...).
    pipeline_tag: str
    #: One extra Hub tag (``semantic-segmentation``, ``pose-estimation``, ...).
    tag: str


class TaskHooks:
    """Task-specific behaviour behind task-agnostic apps (see the module docstring)."""

    #: Short task key (``seg``, ``pose``, ``depth``, ``normal``). Declared in a concrete task's
    #: own class body; base classes have none. It names the ``task=`` config group and the
    #: registry entry.
    key: ClassVar[str]
    #: Title, Hub pipeline tag and tag of the model card.
    card_info: ClassVar[CardInfo] = CardInfo("image analysis", "image-to-image", "vision")

    img_size: tuple[int, int]
    #: Whether ``predict`` finds the people of each image first (``detector=``) and hands the
    #: boxes to :meth:`predict_dataset` as ``detections=`` (top-down pose). Whole-image tasks
    #: leave it ``False`` and no detector is built.
    needs_person_boxes: ClassVar[bool] = False
    #: The ``predict_step`` entries of a person that ``smoothing=`` filters over the frames of a
    #: video (pixel coordinates, e.g. pose ``keypoints``); empty: nothing to smooth.
    smoothed_keys: ClassVar[tuple[str, ...]] = ()

    # ----------------------------------------------------------------- Hub card
    def card_config(self) -> dict[str, Any]:
        """Task facts added to ``config.json`` (seg: ``classes``; pose: ``keypoint_set`` and
        ``keypoints``). JSON-serialisable; :meth:`card_lines` reads them back."""
        return {}

    @classmethod
    def card_lines(cls, config: Mapping[str, Any]) -> list[str]:
        """Markdown lines for the model card, from a ``config.json`` dict.

        The first lines may continue the card's fact table (``| classes | 28 |``); a section
        of its own starts with an empty line and a ``## `` heading.
        """
        return []

    # ----------------------------------------------------------------- official weights
    @classmethod
    def arguments_for_weights(cls, pretrained: PretrainedCfg | None,
                              data: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor arguments for predicting with official weights, without a checkpoint.

        In training a data module supplies them (classes, keypoint set); here they come from
        the registered weights' metadata (``pretrained``, ``None`` for an unregistered file)
        and from the ``data.*`` options the user gave (``data``, e.g. ``classes``).
        """
        return {}

    # ----------------------------------------------------------------- data
    @classmethod
    def demo_data(cls, root: Path) -> dict[str, Any]:
        """A data module config (a Hydra ``_target_`` dict) of a few small samples, for smoke
        tests and demos; ``root`` is a scratch folder for data that must be generated."""
        raise NotImplementedError(f"{cls.__name__} has no demo data")

    def predict_dataset(self, images: list[Path], **options: Any) -> Any:
        """A dataset of prediction inputs for image files (used by ``sapiens_kit.predict``).

        Each sample is ``{"image": uint8 (3, H, W) at the model size, "meta": {"path",
        "orig_size"}}``; tasks with other needs (pose boxes, depth foregrounds) override this.
        ``options`` are the app's task inputs (``bboxes=``, ``mask_dir=``; for a task with
        :attr:`needs_person_boxes`, ``detections=`` (input path -> ``Detections``) and
        ``padding=``). A task that makes several samples of one image (one per person) sets
        ``meta["n_samples"]`` to their number, and gives every image at least one sample, so
        that ``predict`` knows when an image's predictions are all in.
        """
        from sapiens_kit.data.datasets.predict_inputs import ImageListDataset

        return ImageListDataset(images, self.img_size)

    def coco_records(self, predictions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """COCO result records (``category_id``, ``bbox``, ``score``, ``keypoints``) of one
        image's ``predict_step`` items, one per item in order; the caller sets ``image_id``
        (and, for video, ``frame`` and ``track_id``). Tasks with no COCO format return []."""
        return []

    def save_predictions(
        self, batches: list[Any] | None, out_dir: Path, limit: int | None = None
    ) -> list[Path]:
        """Write ``predict_step`` outputs (machine-readable files and overlays) to ``out_dir``.

        A sample whose ``meta`` has ``video`` and ``frame`` is a video frame: files that name
        their source should name the video and the frame rather than the scratch frame file.
        A ``results.json`` written here (a list of COCO result records, keyed by
        ``meta["image_id"]``) is merged by ``predict`` into one ``results.json`` at the output
        root. Returns the written paths.
        """
        raise NotImplementedError

    # ----------------------------------------------------------------- pictures
    def set_draw_options(self, **options: Any) -> None:
        """Drawing options for every later picture (predict's ``draw.keypoint_threshold``,
        ``draw.alpha``); ``None`` values keep the task's default."""
        self._draw_options = {k: v for k, v in options.items() if v is not None}

    def draw_option(self, options: Mapping[str, Any], name: str, default: Any) -> Any:
        """A drawing option: given to :meth:`draw`, else set with :meth:`set_draw_options`,
        else the task's ``default``."""
        value = options.get(name)
        if value is None:
            value = getattr(self, "_draw_options", {}).get(name)
        return default if value is None else value

    def draw(self, image: np.ndarray, predictions: Sequence[Mapping[str, Any]],
             **options: Any) -> np.ndarray:
        """One RGB uint8 picture of one image's predictions.

        Args:
            image: The RGB photo (original size) the predictions were made on.
            predictions: That image's ``predict_step`` items (one per person for pose, a
                single item for the per-image tasks).
            **options: Drawing options a task understands (``side_by_side``,
                ``keypoint_threshold``, ``alpha``); others are ignored. Read them with
                :meth:`draw_option`, so that ``None`` or a missing one falls back to
                :meth:`set_draw_options` and then the task's default.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot draw its predictions")

    def media_pictures(self, batch: dict[str, Any], n: int,
                       predict: bool = True) -> tuple[str, list[Picture]]:
        """Pictures of the first ``n`` samples of a training/validation batch, with the model's
        predictions when ``predict`` (else the labels alone).

        Returns:
            ``(kind, pictures)``: ``kind`` names the logged key ``val/<kind>``.
        """
        raise NotImplementedError(f"{type(self).__name__} draws no training pictures")

    # ----------------------------------------------------------------- test loop
    # (Not stubs of validation_step here: Lightning runs validation when a module overrides it.)
    def test_step(self, batch: Any, batch_idx: int) -> Any:
        """Same as validation."""
        return self.validation_step(batch, batch_idx)  # type: ignore[attr-defined]

    def on_test_epoch_end(self) -> None:
        """Same as validation."""
        self.on_validation_epoch_end()  # type: ignore[attr-defined]


__all__ = ["CardInfo", "TaskHooks"]
