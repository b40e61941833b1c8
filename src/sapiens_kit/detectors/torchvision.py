"""``detector=torchvision``: Faster R-CNN R50-FPN v2 from torchvision (nothing extra to install).

Weights (``detector.weights``): ``COCO_V1`` or ``DEFAULT`` (torchvision's
``FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1``, 46.7 box AP, read from torch hub's checkpoint
cache or downloaded), a local ``.pth``/``.safetensors`` state dict, or ``null`` (random).
``detector.config`` is passed to the model builder (``min_size``, ``max_size``,
``box_score_thresh``, ...); its ``backbone`` key (default ``resnet50``, the v2 architecture) may
name a smaller ResNet, which builds a plain ResNet-FPN Faster R-CNN: for tests and offline demos.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sapiens_kit.detectors.base import Detections, PersonDetector
from sapiens_kit.detectors.hf import coco_categories, person_label
from sapiens_kit.detectors.postprocess import PostProcess
from sapiens_kit.detectors.weights import from_torch_hub, load_into, local_path, read_state_dict
from sapiens_kit.errors import UserError


class TorchvisionDetector(PersonDetector):
    """A torchvision detection model (list of images in, boxes/labels/scores out) kept to
    ``person``.

    Args:
        model: The detection model; it resizes and normalises internally and answers in the
            input images' pixels.
        post: The shared filters.
        batch_size: Images per forward pass.
        person: The ``person`` label index.
    """

    name = "torchvision"

    def __init__(self, model: Any, post: PostProcess, batch_size: int = 1,
                 person: int = 1) -> None:
        super().__init__(post, batch_size)
        self.model = model.eval()
        self.person = person

    def _move(self, device: Any) -> None:
        self.model.to(device)

    def _detect_batch(self, images: list[np.ndarray], names: list[str]) -> list[Detections]:
        import torch

        tensors = [torch.from_numpy(image).to(self.device).permute(2, 0, 1).float().div_(255)
                   for image in images]
        with torch.inference_mode():
            found = self.model(tensors)
        out = []
        for result in found:
            person = result["labels"] == self.person
            out.append(Detections(result["boxes"][person].float().cpu().numpy(),
                                  result["scores"][person].float().cpu().numpy()))
        return out


def build(cfg: Mapping[str, Any], post: PostProcess) -> TorchvisionDetector:
    """The Faster R-CNN detector of a ``detector`` config node."""
    from torchvision.models.detection import (
        FasterRCNN,
        FasterRCNN_ResNet50_FPN_V2_Weights,
        fasterrcnn_resnet50_fpn_v2,
    )
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    options = dict(cfg.get("config") or {})
    backbone = options.pop("backbone", "resnet50")
    categories = coco_categories()
    try:
        if backbone == "resnet50":
            model = fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None,
                                               num_classes=len(categories), **options)
        else:
            model = FasterRCNN(resnet_fpn_backbone(backbone_name=backbone, weights=None),
                               num_classes=len(categories), **options)
    except (TypeError, ValueError, KeyError) as err:
        raise UserError(f"detector.config: {err}") from None
    weights = cfg.get("weights")
    if weights is not None:
        path = local_path(str(weights))
        if path is not None:
            load_into(model, read_state_dict(path), path)
        else:
            names = list(FasterRCNN_ResNet50_FPN_V2_Weights.__members__)  # with DEFAULT
            if str(weights) not in names or backbone != "resnet50":
                raise UserError(f"detector.weights={weights}: torchvision weights are one of "
                                f"{', '.join(names)} (with the default resnet50 backbone), a "
                                "local file, or null (random)")
            url = FasterRCNN_ResNet50_FPN_V2_Weights[str(weights)].url
            load_into(model, from_torch_hub(url), url)
    return TorchvisionDetector(model, post, int(cfg.get("batch_size", 1)),
                               person_label(dict(enumerate(categories)), 1))


__all__ = ["TorchvisionDetector", "build"]
