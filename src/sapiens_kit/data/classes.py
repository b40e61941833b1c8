"""Class vocabularies for segmentation: names, palette, left/right flip pairs, loss weights.

A classes file is JSON or YAML with ``classes`` (list of names) and optionally ``palette``
(RGB triples), ``flip_pairs`` (index or name pairs swapped on horizontal flip), ``class_weight``
and ``ignore_index``. ``sapiens28`` names the shipped Sapiens Goliath 28-class preset.
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from sapiens_kit.data.io import malformed, read_yaml_or_json

PRESETS = ("sapiens28",)


class ClassesFileError(ValueError):
    """A classes file is missing or malformed."""


@dataclass(frozen=True)
class ClassSet:
    """A segmentation vocabulary."""

    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...] = ()
    flip_pairs: tuple[tuple[int, int], ...] = ()
    class_weight: tuple[float, ...] | None = None
    ignore_index: int = 255
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.palette:
            object.__setattr__(self, "palette", default_palette(len(self.names)))

    @property
    def num_classes(self) -> int:
        """Number of classes (background included when the vocabulary has one)."""
        return len(self.names)

    def flip_lut(self) -> np.ndarray:
        """A 256-entry lookup table that swaps left/right labels (identity elsewhere)."""
        lut = np.arange(256, dtype=np.uint8)
        for a, b in self.flip_pairs:
            lut[a], lut[b] = b, a
        return lut


def default_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """Distinct colours: dark grey for class 0 (background), evenly spaced hues after."""
    colours = [(50, 50, 50)]
    for i in range(1, n):
        r, g, b = colorsys.hsv_to_rgb((i - 1) / max(n - 1, 1), 0.85, 1.0)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return tuple(colours[:n])


def load_classes(spec: str | Path) -> ClassSet:
    """Load a :class:`ClassSet` from a preset name or a JSON/YAML file."""
    if str(spec) in PRESETS:
        text = resources.files("sapiens_kit.assets.classes").joinpath(f"{spec}.json").read_text()
        return _parse(json.loads(text), str(spec))
    path = Path(spec)
    if not path.is_file():
        raise ClassesFileError(f"{path}: classes file does not exist (or use a preset: {PRESETS})")
    data = read_yaml_or_json(path, "classes file", ClassesFileError)
    with malformed(path, "classes file", ClassesFileError):
        return _parse(data, str(path))


def _parse(data: Any, source: str) -> ClassSet:
    if isinstance(data, list):
        data = {"classes": data}
    if not isinstance(data, dict) or "classes" not in data:
        raise ClassesFileError(f"{source}: expected a mapping with a 'classes' list of names")
    names = data["classes"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ClassesFileError(f"{source}: 'classes' must be a non-empty list of names")
    if len(set(names)) != len(names):
        raise ClassesFileError(f"{source}: class names must be unique")
    n = len(names)
    palette = tuple(tuple(int(c) for c in rgb) for rgb in data.get("palette") or ())
    if palette and (len(palette) != n or any(len(c) != 3 for c in palette)):
        raise ClassesFileError(f"{source}: 'palette' needs one RGB triple per class ({n})")
    pairs = []
    for pair in data.get("flip_pairs") or ():
        if len(pair) != 2:
            raise ClassesFileError(f"{source}: flip pair {pair} must have two entries")
        idx = [names.index(p) if isinstance(p, str) and p in names else p for p in pair]
        if not all(isinstance(i, int) and 0 <= i < n for i in idx):
            raise ClassesFileError(f"{source}: flip pair {pair} names an unknown class")
        pairs.append((int(idx[0]), int(idx[1])))
    weight = data.get("class_weight")
    if weight is not None and len(weight) != n:
        raise ClassesFileError(f"{source}: 'class_weight' needs {n} entries, got {len(weight)}")
    ignore = int(data.get("ignore_index", 255))
    if 0 <= ignore < n:
        raise ClassesFileError(f"{source}: ignore_index {ignore} collides with a class id")
    return ClassSet(
        names=tuple(names),
        palette=palette,  # type: ignore[arg-type]
        flip_pairs=tuple(pairs),
        class_weight=tuple(float(w) for w in weight) if weight is not None else None,
        ignore_index=ignore,
        source=source,
    )
