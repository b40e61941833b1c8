"""Person detection with a transformers object detector (RT-DETR, DETR and their relatives).

The model and its image processor come from one ``detector.weights`` source: a Hugging Face
repository id (the cache, then a download), a folder written by ``save_pretrained``, a weights
file for the family's architecture, or ``null`` for random weights. ``detector.config`` overrides
the family's model config and ``detector.processor`` its image processor (for tests and offline
demos: a small random model, a smaller input size). Every query of the model gives its
person probability (sigmoid or softmax, as the family was trained) and box; each query is one
candidate person, so a box's score is its person score even when another class scores higher
(per-class detections, as torchvision's detectors give).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sapiens_kit.detectors.base import Detections, PersonDetector
from sapiens_kit.detectors.postprocess import PostProcess
from sapiens_kit.detectors.weights import from_hub, load_into, local_path, read_state_dict
from sapiens_kit.errors import UserError


@dataclass(frozen=True)
class HFFamily:
    """What a transformers detector family needs for random or file weights.

    Attributes:
        name: The registry name.
        model_class: ``transformers`` class name of the model (``RTDetrForObjectDetection``).
        config_class: Its config class name.
        processor_class: Its image processor class name.
        labels: ``id2label`` of the family's COCO checkpoints (random models use it too).
        config: Config arguments of the default architecture, beyond the class defaults.
        person: The ``person`` class index when a model's labels do not name it.
        sigmoid: Class scores are independent sigmoids (focal-loss training: RT-DETR,
            Deformable DETR); else a softmax over the classes and "no object" (DETR).
    """

    name: str
    model_class: str
    config_class: str
    processor_class: str
    labels: Callable[[], dict[int, str]]
    config: dict[str, Any] = field(default_factory=dict)
    person: int = 0
    sigmoid: bool = True


def coco_categories() -> list[str]:
    """The 91 COCO category ids' names (``N/A`` for unused ids, ``person`` is id 1), as
    torchvision's and DETR's COCO heads number them."""
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_V2_Weights

    return list(FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1.meta["categories"])


def person_label(id2label: Mapping[Any, str], default: int) -> int:
    """The class index named ``person`` in a model's labels; ``default`` if none is."""
    for index, name in id2label.items():
        if str(name).strip().lower() == "person":
            return int(index)
    return default


class HFDetector(PersonDetector):
    """A transformers object detector kept to its ``person`` class.

    Args:
        model: The ``*ForObjectDetection`` model.
        processor: Its image processor (resize, rescale, normalise; box post-processing).
        post: The shared filters.
        batch_size: Images per forward pass.
        family: The family it was built as (its name, its default ``person`` index).
    """

    def __init__(self, model: Any, processor: Any, post: PostProcess, batch_size: int = 1,
                 family: HFFamily | None = None) -> None:
        super().__init__(post, batch_size)
        self.model = model.eval()
        self.processor = processor
        self.family = family or HFFamily("", "", "", "", dict)
        self.name = self.family.name
        self.person = person_label(model.config.id2label, self.family.person)
        kwargs = getattr(getattr(processor, "valid_kwargs", None), "__annotations__", {})
        self._processor_on_device = "device" in kwargs

    def _move(self, device: Any) -> None:
        self.model.to(device)

    def _detect_batch(self, images: list[np.ndarray], names: list[str]) -> list[Detections]:
        import torch

        # uint8 CHW tensors: on the model's device when the processor resizes with torch
        # (transformers 5's torchvision backend), so a GPU does the resizing too.
        where = self.device if self._processor_on_device else "cpu"
        tensors = [torch.from_numpy(image).to(where).permute(2, 0, 1) for image in images]
        inputs = self.processor(images=tensors, return_tensors="pt",
                                input_data_format="channels_first")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.inference_mode():
            outputs = self.model(**inputs)
            logits = outputs.logits.float()
            probs = logits.sigmoid() if self.family.sigmoid else logits.softmax(-1)
            scores = probs[..., self.person]
            # (cx, cy, w, h) relative to the image (DETR's padding excluded) -> x1 y1 x2 y2 px.
            cx, cy, w, h = outputs.pred_boxes.float().unbind(-1)
            boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
            sizes = torch.tensor([[i.shape[1], i.shape[0]] * 2 for i in images],
                                 dtype=boxes.dtype, device=boxes.device)
            boxes = boxes * sizes[:, None, :]
        out = []
        for image_boxes, image_scores in zip(boxes, scores, strict=True):
            keep = image_scores >= self.post.score_thr  # fewer rows to copy off the device
            out.append(Detections(image_boxes[keep].cpu().numpy(),
                                  image_scores[keep].cpu().numpy()))
        return out


def _no_backbone_download(config: Any) -> None:
    """Build the backbone without its own ImageNet weights: the detector's checkpoint holds
    them, and fetching them (timm, the hub) would fail offline for nothing."""
    for node in (config, getattr(config, "backbone_config", None)):
        if node is not None and hasattr(node, "use_pretrained_backbone"):
            node.use_pretrained_backbone = False


def _transformers(name: str) -> Any:
    import transformers

    return getattr(transformers, name)


def build_hf(family: HFFamily, cfg: Mapping[str, Any], post: PostProcess) -> HFDetector:
    """The family's detector from a ``detector`` config node (see the module docstring)."""
    weights = cfg.get("weights")
    overrides = dict(cfg.get("config") or {})
    processor_args = dict(cfg.get("processor") or {})
    model_cls = _transformers(family.model_class)
    processor_cls = _transformers(family.processor_class)
    path = local_path(str(weights)) if weights is not None else None
    if weights is not None and (path is None or path.is_dir()):
        # A repository id or a save_pretrained folder: the model says its own architecture.
        source = str(path) if path is not None else str(weights)

        def load_model(name: str, **kw: Any) -> Any:
            config = _transformers("AutoConfig").from_pretrained(name, **overrides, **kw)
            _no_backbone_download(config)
            return _transformers("AutoModelForObjectDetection").from_pretrained(
                name, config=config, **kw)

        def fetch(load: Callable[..., Any]) -> Any:
            if path is None:
                return from_hub(load, source)
            try:
                return load(source, local_files_only=True)
            except (OSError, ValueError) as err:
                raise UserError(f"detector.weights={source}: {str(err).splitlines()[0]}") from None

        model = fetch(load_model)
        try:
            processor = fetch(lambda name, **kw: _transformers("AutoImageProcessor")
                              .from_pretrained(name, **processor_args, **kw))
        except UserError:
            if path is None:
                raise
            processor = processor_cls(**processor_args)  # a folder with the weights only
        return HFDetector(model, processor, post, int(cfg.get("batch_size", 1)), family)
    labels = family.labels()
    config_args = {"id2label": labels, "label2id": {v: k for k, v in labels.items()},
                   "use_pretrained_backbone": False, **family.config, **overrides}
    try:
        config = _transformers(family.config_class)(**config_args)
    except (TypeError, ValueError) as err:
        raise UserError(f"detector.config: {err}") from None
    model = model_cls(config)
    if path is not None:
        load_into(model, read_state_dict(path), path)
    return HFDetector(model, processor_cls(**processor_args), post,
                      int(cfg.get("batch_size", 1)), family)


__all__ = ["HFDetector", "HFFamily", "build_hf", "coco_categories", "person_label"]
