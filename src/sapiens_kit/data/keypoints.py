"""Keypoint sets: names, left/right swaps, skeleton, OKS sigmas and body-part groups.

Three presets ship with the kit (``src/sapiens_kit/assets/keypoints/*.json``, written by
``_generate.py`` there): ``coco17``, ``coco_wholebody133`` and ``goliath308`` (aliases ``coco``,
``coco_wholebody``, ``goliath``). A user-defined set is a small JSON or YAML file::

    name: my_markers                # optional, defaults to the file stem
    names: [head, left_hand, right_hand]
    flip_pairs: [[left_hand, right_hand]]     # names or indices
    sigmas: [0.03, 0.05, 0.05]      # OKS sigma per point, or one number for all
    skeleton: [[head, left_hand], [head, right_hand]]
    # optional: skeleton_colors, keypoint_colors (RGB), parts {name: [names|indices]},
    # upper_body / lower_body (half-body augmentation), annotation_fields [[field, count]]

Sets convert into each other through the names they share, e.g. COCO-WholeBody labels train
the 53 shared channels of a Goliath-308 head (:func:`keypoint_mapping`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sapiens_kit.data.io import malformed, read_yaml_or_json

PRESETS = {"coco17": "coco17", "coco": "coco17", "coco_wholebody133": "coco_wholebody133",
           "coco_wholebody": "coco_wholebody133", "goliath308": "goliath308",
           "goliath": "goliath308"}

RGB = tuple[int, int, int]


class KeypointSetError(ValueError):
    """A keypoint-set file or dict is missing or inconsistent."""


@dataclass(frozen=True)
class KeypointSet:
    """An ordered keypoint vocabulary (output channel ``i`` predicts ``names[i]``).

    Attributes:
        name: Preset or user name.
        names: Keypoint names, unique.
        flip_pairs: Index pairs swapped by a horizontal flip.
        sigmas: Per-keypoint OKS sigmas.
        skeleton: Index pairs drawn as limbs.
        skeleton_colors: RGB per link.
        keypoint_colors: RGB per keypoint.
        parts: Evaluation groups (``body``, ``foot``, ``face``, ``left_hand``, ...) as index lists.
        upper_body: Indices used by the half-body augmentation's upper half.
        lower_body: Indices of the lower half.
        annotation_fields: ``(field, count)`` pairs: how a COCO-style annotation stores the points
            (COCO-WholeBody splits them into ``keypoints``, ``foot_kpts``, ``face_kpts``, ...).
        preset: Whether this is a shipped preset (then ``name`` alone identifies it).
    """

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    skeleton: tuple[tuple[int, int], ...] = ()
    skeleton_colors: tuple[RGB, ...] = ()
    keypoint_colors: tuple[RGB, ...] = ()
    parts: dict[str, tuple[int, ...]] = field(default_factory=dict)
    upper_body: tuple[int, ...] = ()
    lower_body: tuple[int, ...] = ()
    annotation_fields: tuple[tuple[str, int], ...] = ()
    preset: bool = False

    @property
    def num_keypoints(self) -> int:
        """Number of keypoints ``K``."""
        return len(self.names)

    @property
    def flip_indices(self) -> list[int]:
        """``flip_indices[i]`` is the channel that keypoint ``i`` becomes after a flip."""
        idx = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            idx[a], idx[b] = b, a
        return idx

    def index(self, name: str) -> int:
        """Channel of keypoint ``name``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeypointSetError(f"{self.name}: no keypoint named '{name}'") from None

    def subset(self, names: Sequence[str], name: str | None = None) -> KeypointSet:
        """The points ``names`` (in this set's order), with pairs, links and parts restricted."""
        keep = [i for i, n in enumerate(self.names) if n in set(names)]
        new = {old: new for new, old in enumerate(keep)}

        def remap(pairs: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
            return [(new[a], new[b]) for a, b in pairs if a in new and b in new]

        colours = self.skeleton_colors or ((255, 255, 255),) * len(self.skeleton)
        links = [(new[a], new[b], c) for (a, b), c in zip(self.skeleton, colours, strict=True)
                 if a in new and b in new]
        parts = {k: tuple(new[i] for i in v if i in new) for k, v in self.parts.items()}
        return KeypointSet(
            name=name or f"{self.name}_subset{len(keep)}",
            names=tuple(self.names[i] for i in keep),
            flip_pairs=tuple(remap(self.flip_pairs)),
            sigmas=tuple(self.sigmas[i] for i in keep),
            skeleton=tuple((a, b) for a, b, _ in links),
            skeleton_colors=tuple(c for *_, c in links),
            keypoint_colors=tuple(self.keypoint_colors[i] for i in keep)
            if self.keypoint_colors else (),
            parts={k: v for k, v in parts.items() if v},
            upper_body=tuple(new[i] for i in self.upper_body if i in new),
            lower_body=tuple(new[i] for i in self.lower_body if i in new),
            annotation_fields=(("keypoints", len(keep)),),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-serialisable description that :func:`load_keypoint_set` reads back."""
        return {
            "name": self.name,
            "names": list(self.names),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "sigmas": list(self.sigmas),
            "skeleton": [list(p) for p in self.skeleton],
            "skeleton_colors": [list(c) for c in self.skeleton_colors],
            "keypoint_colors": [list(c) for c in self.keypoint_colors],
            "parts": {k: list(v) for k, v in self.parts.items()},
            "upper_body": list(self.upper_body),
            "lower_body": list(self.lower_body),
            "annotation_fields": [list(f) for f in self.annotation_fields],
        }

    def spec(self) -> str | dict[str, Any]:
        """The preset name for shipped sets, else the full dict (for task hyperparameters)."""
        return self.name if self.preset else self.to_dict()


def load_keypoint_set(spec: str | Path | Mapping[str, Any] | KeypointSet) -> KeypointSet:
    """A :class:`KeypointSet` from a preset name, a JSON/YAML file or a dict."""
    if isinstance(spec, KeypointSet):
        return spec
    if isinstance(spec, Mapping):
        return _parse(dict(spec), str(spec.get("name", "<dict>")))
    if str(spec) in PRESETS:
        name = PRESETS[str(spec)]
        text = resources.files("sapiens_kit.assets.keypoints").joinpath(f"{name}.json").read_text()
        return _parse(json.loads(text), name, preset=True)
    path = Path(spec)
    if not path.is_file():
        raise KeypointSetError(
            f"{path}: keypoint-set file does not exist (or use a preset: {sorted(set(PRESETS))})"
        )
    data = read_yaml_or_json(path, "keypoint-set file", KeypointSetError)
    if not isinstance(data, dict):
        raise KeypointSetError(f"{path}: expected a mapping with 'names', 'sigmas', ...")
    data.setdefault("name", path.stem)
    with malformed(path, "keypoint-set file", KeypointSetError):
        return _parse(data, str(path))


def _parse(data: dict[str, Any], source: str, preset: bool = False) -> KeypointSet:
    names = data.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise KeypointSetError(f"{source}: 'names' must be a non-empty list of keypoint names")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise KeypointSetError(f"{source}: duplicate keypoint names {dup[:5]}")
    k = len(names)

    def idx(item: Any, what: str) -> int:
        if isinstance(item, str) and item in names:
            return names.index(item)
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item < k:
            return item
        raise KeypointSetError(f"{source}: {what} refers to unknown keypoint {item!r}")

    def pairs(key: str) -> tuple[tuple[int, int], ...]:
        out = []
        for pair in data.get(key) or ():
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise KeypointSetError(f"{source}: each entry of '{key}' needs two keypoints")
            out.append((idx(pair[0], key), idx(pair[1], key)))
        return tuple(out)

    sigmas = data.get("sigmas")
    if sigmas is None:
        raise KeypointSetError(f"{source}: 'sigmas' (OKS sigma per keypoint) is required")
    if isinstance(sigmas, (int, float)):
        sigmas = [float(sigmas)] * k
    if len(sigmas) != k or any(float(s) <= 0 for s in sigmas):
        raise KeypointSetError(f"{source}: 'sigmas' needs {k} positive values, got {len(sigmas)}")
    flips = pairs("flip_pairs")
    used = [i for p in flips for i in p]
    if len(set(used)) != len(used) or any(a == b for a, b in flips):
        raise KeypointSetError(f"{source}: a keypoint appears in more than one flip pair")
    skeleton = pairs("skeleton")
    link_colors = _colours(data.get("skeleton_colors"), len(skeleton), source, "skeleton_colors")
    kp_colors = _colours(data.get("keypoint_colors"), k, source, "keypoint_colors")
    parts = {str(p): tuple(idx(i, f"part '{p}'") for i in members)
             for p, members in (data.get("parts") or {}).items()}
    fields = tuple((str(f), int(n)) for f, n in data.get("annotation_fields") or [("keypoints", k)])
    if sum(n for _, n in fields) != k:
        raise KeypointSetError(f"{source}: 'annotation_fields' counts do not add up to {k}")
    return KeypointSet(
        name=str(data.get("name") or "custom"),
        names=tuple(names),
        flip_pairs=flips,
        sigmas=tuple(float(s) for s in sigmas),
        skeleton=skeleton,
        skeleton_colors=link_colors,
        keypoint_colors=kp_colors,
        parts=parts,
        upper_body=tuple(idx(i, "upper_body") for i in data.get("upper_body") or ()),
        lower_body=tuple(idx(i, "lower_body") for i in data.get("lower_body") or ()),
        annotation_fields=fields,
        preset=preset,
    )


def _colours(value: Any, n: int, source: str, key: str) -> tuple[RGB, ...]:
    if not value:
        return tuple(_hue(i, n) for i in range(n))
    if len(value) != n or any(len(c) != 3 for c in value):
        raise KeypointSetError(f"{source}: '{key}' needs {n} RGB triples")
    return tuple((int(c[0]), int(c[1]), int(c[2])) for c in value)


def _hue(i: int, n: int) -> RGB:
    hsv = np.array([[[int(180 * i / max(n, 1)), 200, 255]]], dtype=np.uint8)
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


# --------------------------------------------------------------------------- conversions
def keypoint_mapping(src: KeypointSet, dst: KeypointSet) -> tuple[np.ndarray, np.ndarray]:
    """``(src_idx, dst_idx)``: the channels of the keypoints both sets name, in ``dst`` order."""
    pos = {n: i for i, n in enumerate(src.names)}
    dst_idx = [j for j, n in enumerate(dst.names) if n in pos]
    src_idx = [pos[dst.names[j]] for j in dst_idx]
    return np.asarray(src_idx, dtype=np.int64), np.asarray(dst_idx, dtype=np.int64)


def convert_keypoints(keypoints: np.ndarray, src: KeypointSet, dst: KeypointSet) -> np.ndarray:
    """Re-order ``(..., K_src, C)`` keypoints into ``dst``; points ``src`` lacks are all zeros."""
    if keypoints.shape[-2] != src.num_keypoints:
        raise KeypointSetError(
            f"expected {src.num_keypoints} keypoints of '{src.name}', got {keypoints.shape[-2]}"
        )
    if src.names == dst.names:
        return keypoints
    src_idx, dst_idx = keypoint_mapping(src, dst)
    out = np.zeros((*keypoints.shape[:-2], dst.num_keypoints, keypoints.shape[-1]),
                   dtype=keypoints.dtype)
    out[..., dst_idx, :] = keypoints[..., src_idx, :]
    return out


def eval_set(annotated: KeypointSet, predicted: KeypointSet) -> KeypointSet:
    """The set to score on: ``annotated`` restricted to the names ``predicted`` also has."""
    if annotated.names == predicted.names:
        return annotated
    shared = set(predicted.names)
    names = [n for n in annotated.names if n in shared]
    if not names:
        raise KeypointSetError(
            f"'{annotated.name}' and '{predicted.name}' share no keypoint names"
        )
    return annotated.subset(names, name=f"{annotated.name}&{predicted.name}")

