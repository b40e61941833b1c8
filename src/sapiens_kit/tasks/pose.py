"""Top-down 2-D pose estimation task (COCO-17, COCO-WholeBody-133, Goliath-308, custom sets)."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np
import torch
from torch import nn

from sapiens_kit.codecs.udp_heatmap import UDPHeatmap
from sapiens_kit.data.io import read_rgb
from sapiens_kit.data.keypoints import keypoint_mapping, load_keypoint_set
from sapiens_kit.losses.pose import KeypointMSELoss, KeypointOHKMMSELoss
from sapiens_kit.media import Picture, caption, to_rgb
from sapiens_kit.metrics.pose import CocoKeypointMetric, oks_nms, rescore, to_results
from sapiens_kit.models.heads.heatmap import HeatmapHead
from sapiens_kit.tasks.base import BaseTask
from sapiens_kit.tasks.hooks import CardInfo
from sapiens_kit.utils.config import asset_path
from sapiens_kit.visualize import blend, draw_instances, draw_pose, hstack

if TYPE_CHECKING:
    from sapiens_kit.models import PretrainedCfg

log = logging.getLogger(__name__)


class PoseTask(BaseTask):
    """Sapiens backbone + :class:`HeatmapHead` + UDP heatmaps, scored with COCO keypoint AP.

    Validation and prediction run the official flip test (the mirrored crop's heatmaps are
    un-mirrored, left/right channels swapped, and averaged with the plain ones), decode with
    DARK-UDP, map the points back to the photo, and score with :class:`CocoKeypointMetric`
    against the data module's ground truth (``coco_ground_truth()``). Each validation also writes
    the COCO results list to ``<default_root_dir>/val_results.json``.

    Args:
        keypoints: Keypoint set the head predicts (preset name or a set dict).
        eval_keypoints: Set the ground truth is scored in, when it differs (e.g. the COCO-WholeBody
            points a Goliath-308 model shares with its labels); points are matched by name.
        head: :class:`HeatmapHead` keyword arguments (``deconv_channels``, ``conv_channels``).
        loss: ``mse`` (KeypointMSELoss) or ``ohkm`` (KeypointOHKMMSELoss).
        ohkm_topk: Keypoints kept per sample by ``ohkm`` (official 128).
        heatmap_sigma: Gaussian sigma when targets are built here (default 6 at 256 high).
        flip_test: Average with the flipped crop at validation and prediction.
        score_mode: Instance score, ``bbox_keypoint`` (official) or ``bbox``.
        keypoint_score_thr: Keypoint scores above this enter the instance score (0.2).
        nms_thr: OKS-NMS threshold (0.9).
        **kwargs: :class:`BaseTask` arguments (backbone, weights, optimisation).
    """

    key = "pose"
    card_info = CardInfo("2D pose estimation", "keypoint-detection", "pose-estimation")
    needs_person_boxes = True  # top-down: predict finds the people first
    smoothed_keys = ("keypoints",)  # smoothing= filters each tracked person's points
    output_layer_name = "final_layer"
    eval_index: torch.Tensor
    flip_index: torch.Tensor

    def __init__(
        self,
        keypoints: str | dict[str, Any] = "coco_wholebody133",
        eval_keypoints: str | dict[str, Any] | None = None,
        head: dict[str, Any] | None = None,
        loss: Literal["mse", "ohkm"] = "mse",
        ohkm_topk: int = 128,
        heatmap_sigma: float | None = None,
        flip_test: bool = True,
        score_mode: Literal["bbox_keypoint", "bbox"] = "bbox_keypoint",
        keypoint_score_thr: float = 0.2,
        nms_thr: float = 0.9,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kset = load_keypoint_set(keypoints)
        self.eval_kset = load_keypoint_set(eval_keypoints) if eval_keypoints else self.kset
        src, dst = keypoint_mapping(self.kset, self.eval_kset)
        if len(dst) != self.eval_kset.num_keypoints:
            raise ValueError(f"evaluation set '{self.eval_kset.name}' has points that "
                             f"'{self.kset.name}' does not predict")
        self.register_buffer("eval_index", torch.as_tensor(src), persistent=False)
        self.register_buffer("flip_index", torch.as_tensor(self.kset.flip_indices),
                             persistent=False)
        match loss:
            case "mse":
                self.loss_fn: nn.Module = KeypointMSELoss()
            case "ohkm":
                self.loss_fn = KeypointOHKMMSELoss(topk=ohkm_topk)
            case _:
                raise ValueError(f"unknown loss '{loss}' (mse, ohkm)")
        self.val_metric = CocoKeypointMetric(self.eval_kset, score_mode, keypoint_score_thr,
                                             nms_thr=nms_thr)
        self._ground_truth: tuple[int, dict[str, Any]] | None = None
        self._warned: set[str] = set()

    def build_head(self, in_channels: int) -> nn.Module:
        """The official heatmap head with one output per keypoint of the set."""
        k = load_keypoint_set(self.hp.keypoints).num_keypoints
        return HeatmapHead(in_channels, k, **(self.hp.head or {}))

    # ------------------------------------------------------------------ helpers
    @property
    def hp(self) -> Any:
        """The hyperparameters (``self.hparams``) with attribute access for the type checker."""
        return self.hparams

    def codec(self, heatmap_size: tuple[int, ...]) -> UDPHeatmap:
        """The UDP codec between this model's input and heatmaps of ``heatmap_size``."""
        return UDPHeatmap(self.img_size, heatmap_size, self.hp.heatmap_sigma)

    def _warn_once(self, key: str, msg: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)

    def _targets(self, batch: dict[str, Any], size: tuple[int, ...]) -> tuple[torch.Tensor,
                                                                               torch.Tensor]:
        target = batch.get("heatmap")
        if isinstance(target, torch.Tensor) and tuple(target.shape[-2:]) == size:
            return target, batch["keypoint_weights"]
        if "encode" not in self._warned:
            self._warned.add("encode")
            log.info("building %s heatmap targets on the model's device (the data gave %s)",
                     size, None if target is None else tuple(target.shape[-2:]))
        return self.codec(size).encode(batch["keypoints"], batch["keypoint_weights"])

    def predict_heatmaps(self, images: torch.Tensor,
                         plain: torch.Tensor | None = None) -> torch.Tensor:
        """Heatmaps for uint8 crops, flip-test averaged when ``flip_test`` is on (``plain``: the
        un-flipped output, when already computed)."""
        heatmaps: torch.Tensor = self(images) if plain is None else plain
        if self.hp.flip_test:
            mirrored = self(images.flip(-1)).flip(-1)
            heatmaps = (heatmaps + mirrored[:, self.flip_index]) / 2
        return heatmaps

    def decode(self, heatmaps: torch.Tensor, meta: list[dict[str, Any]]) -> tuple[torch.Tensor,
                                                                                   torch.Tensor]:
        """Heatmaps -> ``(B, K, 2)`` photo-pixel keypoints and ``(B, K)`` scores."""
        codec = self.codec(tuple(heatmaps.shape[-2:]))
        points, scores = codec.decode(heatmaps)
        center = torch.tensor([m["center"] for m in meta], device=points.device)
        scale = torch.tensor([m["scale"] for m in meta], device=points.device)
        return codec.heatmap_to_image(points, center, scale), scores

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Heatmap loss against (re-)encoded UDP targets."""
        heatmaps: torch.Tensor = self(batch["image"])
        target, weights = self._targets(batch, tuple(heatmaps.shape[-2:]))
        loss: torch.Tensor = self.loss_fn(heatmaps, target.to(heatmaps), weights.to(heatmaps))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss on the plain crops, then flip-tested predictions into the AP metric."""
        plain: torch.Tensor = self(batch["image"])
        heatmaps = self.predict_heatmaps(batch["image"], plain)
        if "keypoint_weights" in batch and batch["keypoint_weights"].sum() > 0:
            target, weights = self._targets(batch, tuple(plain.shape[-2:]))
            self.log("val/loss", self.loss_fn(plain, target.to(plain), weights.to(plain)),
                     batch_size=len(plain), sync_dist=True)
        points, scores = self.decode(heatmaps, batch["meta"])
        meta = batch["meta"]
        self.val_metric.update(
            torch.tensor([m["image_id"] for m in meta]),
            points[:, self.eval_index], scores[:, self.eval_index],
            torch.tensor([m["bbox_score"] for m in meta]),
            torch.tensor([m["scale"][0] * m["scale"][1] for m in meta]),
            torch.tensor([m.get("ann_id", -1) for m in meta]),  # de-duplication, NMS order
        )

    def _get_ground_truth(self) -> dict[str, Any] | None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None or not hasattr(dm, "coco_ground_truth"):
            return None
        if self._ground_truth is None or self._ground_truth[0] != id(dm):
            self._ground_truth = (id(dm), dm.coco_ground_truth())
        return self._ground_truth[1]

    def on_validation_epoch_end(self) -> None:
        """Log ``val/AP``, ``val/AP50`` ... and ``val/AP/<part>``; write the results JSON."""
        gt = self._get_ground_truth()
        if gt is None:
            self._warn_once("gt", "no COCO ground truth (the data module has no "
                            "coco_ground_truth()): skipping keypoint AP")
            self.val_metric.reset()
            return
        self.val_metric.ground_truth = gt
        result = self.val_metric.compute()
        self.log_computed({f"val/{k}": v for k, v in result.items()}, prog_bar=("val/AP",))
        trainer = self.trainer
        if trainer.is_global_zero and not trainer.sanity_checking and trainer.default_root_dir:
            self.val_metric.write_results(Path(trainer.default_root_dir) / "val_results.json")
        self.val_metric.reset()

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Per instance: photo-pixel ``keypoints (K, 2)``, ``scores (K,)`` and the meta."""
        heatmaps = self.predict_heatmaps(batch["image"]).float()  # decode in float32
        points, scores = self.decode(heatmaps, batch["meta"])
        return [{"keypoints": p.cpu().numpy(), "scores": s.cpu().numpy(), "meta": m}
                for p, s, m in zip(points, scores, batch["meta"], strict=True)]

    # ------------------------------------------------------------------ prediction files
    def predict_dataset(self, images: list[Path], **options: Any) -> Any:
        """Top-down crops for image files, one per person: ``detections=`` (input path ->
        ``Detections``, from ``predict``'s detector), else ``bboxes=<file>`` (see
        :class:`PersonCrops`), else the whole image as one person box; ``padding=`` enlarges
        each box (official 1.25); ``decoded=`` (path -> RGB array) saves decoding again."""
        from sapiens_kit.data.datasets.predict_inputs import PersonCrops

        return PersonCrops(images, self.img_size, options.get("bboxes"),
                           float(options.get("bbox_score_thr", 0.0)),
                           detections=options.get("detections"),
                           padding=float(options.get("padding") or 1.25),
                           decoded=options.get("decoded"))

    def coco_records(self, predictions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One COCO result per person, in order: box (x, y, w, h), rescored instance score and
        keypoints (``image_id`` is the caller's)."""
        if not predictions:
            return []
        scores = np.stack([p["scores"] for p in predictions])
        kps = np.concatenate([np.stack([p["keypoints"] for p in predictions]), scores[..., None]],
                             -1)
        inst = rescore(np.array([p["meta"]["bbox_score"] for p in predictions]), scores,
                       self.hp.keypoint_score_thr)
        records = to_results(np.full(len(predictions), -1), kps, inst, self.kset)
        for record, pred in zip(records, predictions, strict=True):
            record["bbox"] = [float(v) for v in pred["meta"]["bbox"]]
        return records

    def save_predictions(
        self, batches: list[Any] | None, out_dir: Path, limit: int | None = None
    ) -> list[Path]:
        """Per image ``<stem>_keypoints.json`` (every person: box, box score, keypoints with
        their scores, and the keypoint names) and ``<stem>_overlay.jpg`` (every person drawn);
        plus ``results.json``: COCO results (rescored, OKS-NMS; ``image_id``, ``category_id``,
        ``bbox``, ``score``, keypoints) of the images with an id (``meta["image_id"] >= 0``)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        by_image: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for pred in (p for batch in batches or [] for p in batch):
            by_image[pred["meta"]["path"]].append(pred)
        written: list[Path] = []
        coco: list[dict[str, Any]] = []
        any_id = False
        thr = self.hp.keypoint_score_thr
        for n, (path, found) in enumerate(by_image.items()):
            image_id = found[0]["meta"].get("image_id", -1)
            any_id = any_id or (image_id is not None and image_id >= 0)
            preds = [p for p in found if not p["meta"].get("empty")]  # nobody was found
            inst_scores = np.zeros(0)
            if preds:
                bbox_scores = np.array([p["meta"]["bbox_score"] for p in preds])
                scores = np.stack([p["scores"] for p in preds])
                inst_scores = rescore(bbox_scores, scores, thr)
            if preds and image_id is not None and image_id >= 0:
                kps = np.concatenate([np.stack([p["keypoints"] for p in preds]),
                                      scores[..., None]], -1)
                areas = np.array([p["meta"]["scale"][0] * p["meta"]["scale"][1] for p in preds])
                keep = sorted(oks_nms(kps, inst_scores, areas, np.asarray(self.kset.sigmas),
                                      self.hp.nms_thr))
                records = to_results(np.full(len(keep), image_id), kps[keep], inst_scores[keep],
                                     self.kset)
                for record, k in zip(records, keep, strict=True):
                    record["bbox"] = [float(v) for v in preds[k]["meta"]["bbox"]]
                coco += records
            if limit is not None and n >= limit:
                continue
            written += self._write_image(Path(path), preds, inst_scores, out_dir,
                                         found[0]["meta"])
        if coco or any_id:
            results = out_dir / "results.json"
            results.write_text(json.dumps(coco))
            written.append(results)
        return written

    def _write_image(self, src: Path, preds: list[dict[str, Any]], inst_scores: np.ndarray,
                     out_dir: Path, meta: dict[str, Any]) -> list[Path]:
        source = meta.get("boxes", "detections")
        record: dict[str, Any] = {
            "image": str(src), "keypoint_set": self.kset.name,
            "keypoint_names": list(self.kset.names), "boxes": source, "instances": [],
        }
        if meta.get("image_id", -1) is not None and meta.get("image_id", -1) >= 0:
            record["image_id"] = int(meta["image_id"])
        if "video" in meta:  # a video frame: name the video, not the scratch frame file
            record.update(image=str(meta["video"]), frame=meta.get("frame"))
        if source == "whole_image":
            record["note"] = ("no person boxes were found or given: the whole image was used as "
                              "one box")
            self._warn_once("whole", "no person boxes found or given for some images: each of "
                            "them was used whole as one box (their files say boxes: whole_image)")
        image = read_rgb(src)
        for pred, score in zip(preds, inst_scores, strict=True):
            kps = np.concatenate([pred["keypoints"], pred["scores"][:, None]], 1)
            record["instances"].append({
                "bbox": [round(float(v), 2) for v in pred["meta"]["bbox"]],
                "bbox_score": float(pred["meta"]["bbox_score"]), "score": float(score),
                "keypoints": [[round(float(x), 2), round(float(y), 2), round(float(s), 4)]
                              for x, y, s in kps],
            })
        image = self.draw(image, preds)  # with predict's draw.* options
        json_path = out_dir / f"{src.stem}_keypoints.json"
        overlay_path = out_dir / f"{src.stem}_overlay.jpg"
        json_path.write_text(json.dumps(record))
        cv2.imwrite(str(overlay_path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        return [json_path, overlay_path]

    # ------------------------------------------------------------------ pictures
    def draw(self, image: np.ndarray, predictions: Sequence[Mapping[str, Any]],
             **options: Any) -> np.ndarray:
        """Every person of the image: box and skeleton (``keypoint_threshold``, default 0.3;
        ``alpha``: opacity of the drawing, default 1)."""
        threshold = float(self.draw_option(options, "keypoint_threshold", 0.3))
        drawn = draw_instances(image, predictions, self.kset, threshold)
        alpha = float(self.draw_option(options, "alpha", 1.0))
        return drawn if alpha >= 1 else blend(image, drawn, alpha)

    def media_pictures(self, batch: dict[str, Any], n: int,
                       predict: bool = True) -> tuple[str, list[Picture]]:
        """The person crop with the predicted skeleton, beside the labelled one."""
        images = batch["image"][:n]
        panels: list[list[np.ndarray]] = [[] for _ in range(len(images))]
        if predict:
            heatmaps = self.predict_heatmaps(images)
            codec = self.codec(tuple(heatmaps.shape[-2:]))
            points, scores = codec.decode(heatmaps)
            points_np = codec.heatmap_to_input(points).cpu().numpy()
            scores_np = scores.cpu().numpy()
            for i in range(len(images)):
                panels[i].append(draw_pose(to_rgb(images[i]).copy(), points_np[i], scores_np[i],
                                           self.kset, self.hp.keypoint_score_thr))
        for i in range(len(images)):
            gt = batch["keypoints"][i].detach().cpu().numpy()
            visible = batch["keypoint_weights"][i].detach().cpu().numpy().reshape(-1) > 0
            panels[i].append(draw_pose(to_rgb(images[i]).copy(), gt[:, :2],
                                       visible.astype(float), self.kset, threshold=0.5))
        label = " (prediction | labels)" if predict else ""
        return "keypoints", [Picture(hstack(p), caption(batch, i) + label)
                             for i, p in enumerate(panels)]

    # ------------------------------------------------------------------ Hub card, weights, data
    def card_config(self) -> dict[str, Any]:
        """The keypoint set's name and its keypoint names."""
        return {"keypoint_set": self.kset.name, "keypoints": list(self.kset.names)}

    @classmethod
    def card_lines(cls, config: Mapping[str, Any]) -> list[str]:
        """The keypoint count and set, and the numbered keypoint names."""
        names = config.get("keypoints") or []
        return [f"| keypoints | {len(names)} (`{config.get('keypoint_set')}`) |", "",
                "## Keypoints", "", ", ".join(f"{i}: {n}" for i, n in enumerate(names))]

    @classmethod
    def arguments_for_weights(cls, pretrained: PretrainedCfg | None,
                              data: Mapping[str, Any]) -> dict[str, Any]:
        """The keypoint set: ``data.keypoints=`` when given, else the registered weights'."""
        if data.get("keypoints"):
            return {"keypoints": data["keypoints"]}
        if pretrained is not None and pretrained.keypoint_set:
            return {"keypoints": pretrained.keypoint_set}
        return {}

    @classmethod
    def demo_data(cls, root: Path) -> dict[str, Any]:
        """The bundled demo: 4 COCO photos with COCO-WholeBody labels (nothing to generate)."""
        return {"_target_": "sapiens_kit.data.CocoKeypointDataModule",
                "root": asset_path("demo_pose"), "train_ann": "annotations.json",
                "val_ann": "annotations.json", "keypoints": "coco_wholebody133",
                "img_size": "${img_size}", "batch_size": 2, "num_workers": 0}
