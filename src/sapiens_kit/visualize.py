"""Drawing shared by the tasks' ``save_predictions``, ``predict`` (images and video), the W&B
media callback and the notebooks.

Everything takes and returns ``(H, W, 3)`` uint8 **RGB** NumPy arrays (convert with
``cv2.cvtColor(..., cv2.COLOR_RGB2BGR)`` before ``cv2.imwrite``):

- segmentation: :func:`colorize_mask`, :func:`overlay_mask`;
- pose: :func:`draw_pose` (one instance), :func:`draw_instances` (boxes + skeletons);
- depth: :func:`colorize_depth` (turbo colour map, near = warm);
- normals: :func:`colorize_normals` (``(n + 1) / 2`` as RGB);
- any task: :func:`draw_prediction` asks the task (its ``draw`` hook) for a picture of one
  image's ``predict_step`` output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from sapiens_kit.data.keypoints import KeypointSet


# ------------------------------------------------------------------------------ segmentation
def colorize_mask(mask: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Index mask ``(H, W)`` -> RGB ``(H, W, 3)``; ids outside the palette are black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    return lut[mask.astype(np.uint8)]


def overlay_mask(
    image: np.ndarray, mask: np.ndarray, palette: Sequence[Sequence[int]], alpha: float = 0.5,
    skip_background: bool = True,
) -> np.ndarray:
    """Blend a coloured index mask over an RGB image (background left untouched by default)."""
    colour = colorize_mask(mask, palette).astype(np.float32)
    out = image.astype(np.float32)
    blend = (1 - alpha) * out + alpha * colour
    keep = mask > 0 if skip_background else np.ones(mask.shape, bool)
    out[keep] = blend[keep]
    return out.round().clip(0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ pose
def blend(image: np.ndarray, drawn: np.ndarray, alpha: float) -> np.ndarray:
    """``drawn`` over ``image`` with opacity ``alpha`` (0: the photo, 1: the drawing)."""
    alpha = min(max(float(alpha), 0.0), 1.0)
    out = (1 - alpha) * image.astype(np.float32) + alpha * drawn.astype(np.float32)
    return out.round().clip(0, 255).astype(np.uint8)


def draw_pose(
    image: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    kset: KeypointSet,
    threshold: float = 0.3,
    radius: int | None = None,
) -> np.ndarray:
    """Draw one instance's skeleton and points (RGB image, ``(K, 2)`` points, ``(K,)`` scores).

    Points scoring below ``threshold`` and links touching them are not drawn. Draws in place
    when ``image`` is contiguous, and returns it.
    """
    out = np.ascontiguousarray(image)
    r = radius or max(1, round(max(out.shape[:2]) / 300))
    ok = scores >= threshold
    pts = np.round(keypoints).astype(int)
    for (a, b), colour in zip(kset.skeleton, kset.skeleton_colors, strict=False):
        if ok[a] and ok[b]:
            cv2.line(out, tuple(pts[a]), tuple(pts[b]), colour, max(1, r), cv2.LINE_AA)
    for i in np.flatnonzero(ok):
        colour = kset.keypoint_colors[i] if kset.keypoint_colors else (255, 255, 255)
        cv2.circle(out, tuple(pts[i]), r, colour, -1, cv2.LINE_AA)
    return out


def draw_instances(
    image: np.ndarray, instances: Sequence[Mapping[str, Any]], kset: KeypointSet,
    threshold: float = 0.3, boxes: bool = True,
) -> np.ndarray:
    """Draw every person of one image: its box (white) and skeleton.

    Args:
        image: RGB image (copied, not changed).
        instances: ``predict_step`` outputs of one image: ``keypoints (K, 2)``, ``scores (K,)``
            and ``meta["bbox"]`` ``[x, y, w, h]``.
        kset: The keypoint set (skeleton and colours).
        threshold: Keypoint score below which a point is not drawn.
        boxes: Draw the person boxes.
    """
    out = np.ascontiguousarray(image).copy()
    for inst in instances:
        if boxes and "bbox" in inst.get("meta", {}):
            x, y, w, h = (round(float(v)) for v in inst["meta"]["bbox"])
            cv2.rectangle(out, (x, y), (x + w, y + h), (255, 255, 255), 1)
        out = draw_pose(out, np.asarray(inst["keypoints"]), np.asarray(inst["scores"]), kset,
                        threshold)
    return out


# ------------------------------------------------------------------------------ depth, normals
def colorize_depth(depth: np.ndarray, foreground: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 visualisation: turbo colormap, near = warm/bright, black outside the foreground.

    Depth is min-max normalised over the foreground and inverted so that near is bright, as the
    official ``vis_depth`` does.
    """
    fg = np.ones(depth.shape, bool) if foreground is None else foreground.astype(bool)
    fg &= np.isfinite(depth)
    out = np.zeros((*depth.shape, 3), dtype=np.uint8)
    if not fg.any():
        return out
    values = depth[fg]
    lo, hi = float(values.min()), float(values.max())
    norm = 1.0 - (depth - lo) / max(hi - lo, 1e-12)
    grey = (np.clip(np.nan_to_num(norm), 0, 1) * 255).round().astype(np.uint8)
    colour = cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    out[fg] = colour[fg]
    return out


def colorize_normals(normal: np.ndarray, foreground: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 ``(n + 1) / 2`` of unit normals ``(H, W, 3)``; black outside the foreground."""
    rgb: np.ndarray = ((np.clip(np.nan_to_num(normal), -1, 1) + 1) / 2 * 255).round().astype(
        np.uint8)
    if foreground is not None:
        rgb[~foreground.astype(bool)] = 0
    return rgb


# ------------------------------------------------------------------------------ any task
def hstack(images: Sequence[np.ndarray], height: int | None = None) -> np.ndarray:
    """Place RGB images side by side, each resized to ``height`` (default: the first's)."""
    height = height or images[0].shape[0]
    resized = [img if img.shape[0] == height else cv2.resize(
        img, (max(1, round(img.shape[1] * height / img.shape[0])), height),
        interpolation=cv2.INTER_AREA) for img in images]
    return np.concatenate(resized, axis=1)


def task_palette(task: Any) -> Sequence[Sequence[int]]:
    """A segmentation task's class colours (kept for old callers: use ``task.palette``)."""
    return task.palette  # type: ignore[no-any-return]


def draw_prediction(
    image: np.ndarray, prediction: Mapping[str, Any] | Sequence[Mapping[str, Any]], task: Any,
    side_by_side: bool = True, keypoint_threshold: float | None = None,
    alpha: float | None = None,
) -> np.ndarray:
    """One picture of one image's prediction, whatever the task (its ``draw`` hook).

    Args:
        image: The RGB photo the prediction was made on (original size).
        prediction: The task's ``predict_step`` output for this image: one item, or the list
            of the image's items (pose: one per person).
        task: The task that made it.
        side_by_side: Depth and normals: the photo and the colour map side by side (else the
            colour map alone).
        keypoint_threshold: Pose: keypoints scoring below this are not drawn (``None``: the
            task's default, 0.3).
        alpha: Opacity of the drawing over the photo (``None``: the task's default).

    Returns:
        An RGB uint8 picture: a mask overlay, skeletons, or the colour map.
    """
    items = [prediction] if isinstance(prediction, Mapping) else list(prediction)
    return task.draw(image, items, side_by_side=side_by_side,  # type: ignore[no-any-return]
                     keypoint_threshold=keypoint_threshold, alpha=alpha)


__all__ = [
    "blend",
    "colorize_depth",
    "colorize_mask",
    "colorize_normals",
    "draw_instances",
    "draw_pose",
    "draw_prediction",
    "hstack",
    "overlay_mask",
    "task_palette",
]
