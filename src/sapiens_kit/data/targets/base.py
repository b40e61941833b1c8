"""What a dense (per-pixel) target is, as one small object, and the registry of them.

A :class:`DenseTarget` holds everything the shared data code needs to know about one kind of
per-pixel label (depth, surface normals, ...): its batch key and channel count, the folder names
and file suffixes it is stored under, how a file is read and which pixels are valid, how it
mirrors and whether it may be rotated, how it is drawn, how a synthetic scene provides it and how
a Hugging Face ``datasets`` cell is written to a file. The folder dataset, the transforms, the
HF exporter and the synthetic generator ask the target instead of branching on its name, so a new
target is one new module in this package (or any subclass passed as an object).

Targets are frozen dataclasses: their fields are reading options (a depth scale, axis flips), so
``DepthTarget(depth_scale=0.001)`` is a complete description of "millimetre depth".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from sapiens_kit.data.io import DataFileError, as_array, as_pil, read_array

#: ``(value, valid, anomalies)``: the target in kit form with invalid pixels zeroed, the valid
#: pixels, and named masks of the anomalies (counted in :class:`PixelReport`).
Validity = tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]

T = TypeVar("T", bound="DenseTarget")


class PixelReport:
    """Invalid pixels found in one target file (they are masked out, never trained on).

    One count per anomaly the target's :meth:`DenseTarget.validity` names (``nonfinite``,
    ``negative``, ...), readable as attributes. Anomalies a target lists in
    ``background_anomalies`` (zero depth, zero-length normals) mean "background" and are only
    counted inside a foreground mask.
    """

    def __init__(self, **counts: int) -> None:
        self.counts = {k: int(v) for k, v in counts.items()}

    def __getattr__(self, name: str) -> int:
        counts = self.__dict__.get("counts", {})
        if name in counts:
            return int(counts[name])
        raise AttributeError(name)

    def total(self) -> int:
        """Number of anomalous pixels."""
        return sum(self.counts.values())

    def __str__(self) -> str:
        return ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in self.counts.items() if v)

    def __repr__(self) -> str:
        return f"PixelReport({', '.join(f'{k}={v}' for k, v in self.counts.items())})"


@dataclass(frozen=True)
class DenseTarget:
    """One kind of per-pixel regression target; subclass it and set the class attributes.

    Class attributes:
        key: Batch key of the target tensor and name of its folder (``depth``).
        channels: Channels per pixel (1 for depth, 3 for normals).
        folders: Accepted folder names, ours (``key``) first (default: ``(key,)``).
        suffixes: File suffixes read, in order of preference for one stem.
        rotatable: Whether the training augmentation may rotate it (a rotated normal map would
            need its vectors rotated as well).
        flip_signs: Per-channel sign applied after a left-right mirror (normals negate X), or
            ``None`` when mirroring keeps the values.
        background_anomalies: Anomalies that mean "no target here" (background) unless a
            foreground mask says otherwise; only counted inside a mask.
        hf_image_modes: PIL modes of Hugging Face image cells written as PNG as stored (the
            reader decodes them); every other cell is written as float32 ``.npy``.
    """

    key: ClassVar[str]
    channels: ClassVar[int]
    folders: ClassVar[tuple[str, ...]] = ()
    suffixes: ClassVar[tuple[str, ...]] = (".npy", ".exr", ".png", ".tif", ".tiff")
    rotatable: ClassVar[bool] = False
    flip_signs: ClassVar[tuple[float, ...] | None] = None
    background_anomalies: ClassVar[tuple[str, ...]] = ()
    hf_image_modes: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ files
    @property
    def folder_names(self) -> tuple[str, ...]:
        """Folder names to look for, ours first."""
        return self.folders or (self.key,)

    def read(self, path: str | Path) -> np.ndarray:
        """The stored values as float32 ``(H, W)`` (one channel) or ``(H, W, C)``, not yet
        validated. Integer images are scaled to ``[0, 1]``."""
        path = Path(path)
        arr = read_array(path)
        c = self.channels
        if c == 1:
            if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
                arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:2])
            elif arr.ndim == 3 and path.suffix.lower() != ".npy" and arr.shape[-1] in (3, 4):
                arr = arr[..., 0]
            if arr.ndim != 2:
                raise DataFileError(f"{path}: {self.key} must be a single-channel (H, W) map, "
                                    f"got shape {arr.shape}")
        else:
            if arr.ndim == 3 and arr.shape[0] == c and arr.shape[-1] != c:
                arr = arr.transpose(1, 2, 0)
            if arr.ndim != 3 or arr.shape[-1] not in (c, c + 1):
                raise DataFileError(f"{path}: {self.key} must be (H, W, {c}), got shape "
                                    f"{arr.shape}")
            arr = arr[..., :c]
        if arr.dtype.kind not in "iuf":  # complex, bool, strings: not a label map
            raise DataFileError(f"{path}: {self.key} has non-numeric dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.integer):
            return (arr.astype(np.float32) / np.float32(np.iinfo(arr.dtype).max)).astype(
                np.float32)
        return arr.astype(np.float32)

    def validity(self, values: np.ndarray) -> Validity:
        """Valid pixels are finite in every channel; invalid ones are zeroed."""
        finite = np.isfinite(values) if values.ndim == 2 else np.isfinite(values).all(-1)
        mask = finite if values.ndim == 2 else finite[..., None]
        return (np.where(mask, values, 0).astype(np.float32), finite,
                {"nonfinite": ~finite})

    def load(self, path: str | Path) -> Validity:
        """:meth:`read` then :meth:`validity`."""
        return self.validity(self.read(path))

    def write(self, stem: Path, values: np.ndarray) -> Path:
        """Save kit-form values as ``stem.npy`` (float32), the lossless form :meth:`read` reads."""
        path = stem.with_suffix(".npy")
        np.save(path, np.asarray(values, dtype=np.float32))
        return path

    # ------------------------------------------------------------------ augmentation
    def hflip(self, values: np.ndarray) -> np.ndarray:
        """Mirror left-right, applying :attr:`flip_signs` to the channels."""
        out = np.ascontiguousarray(values[:, ::-1])
        if self.flip_signs is not None:
            out = out * np.asarray(self.flip_signs, dtype=out.dtype)
        return out

    # ------------------------------------------------------------------ pictures
    def colorize(self, values: np.ndarray, foreground: np.ndarray | None = None) -> np.ndarray:
        """RGB uint8 picture of ``values``; black outside ``foreground``.

        The default shows 3 channels in ``[0, 1]`` as colours and one channel as grey,
        min-max scaled over the foreground.
        """
        values = np.nan_to_num(np.asarray(values, dtype=np.float32))
        fg = (np.ones(values.shape[:2], bool) if foreground is None
              else np.asarray(foreground).astype(bool))
        if values.ndim == 2:
            lo, hi = (float(values[fg].min()), float(values[fg].max())) if fg.any() else (0, 1)
            grey = (values - lo) / max(hi - lo, 1e-12)
            values = np.repeat(grey[..., None], 3, -1)
        rgb = (np.clip(values[..., :3], 0, 1) * 255).round().astype(np.uint8)
        rgb[~fg] = 0
        return rgb

    # ------------------------------------------------------------------ sources
    def from_scene(self, scene: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """The target of a synthetic scene (:func:`sapiens_kit.data.synthetic.render_scene`),
        or ``None`` when the renderer has no such layer."""
        return scene.get(self.key)

    def write_hf(self, value: Any, stem: Path, where: str) -> Path:
        """Write one Hugging Face ``datasets`` cell (array, PIL image or encoded image) as a
        file :meth:`read` understands; returns its path."""
        image = as_pil(value)
        if image is not None and image.mode in self.hf_image_modes:
            import cv2

            arr = np.asarray(image)
            if arr.ndim == 3:
                arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
            path = stem.with_suffix(".png")
            cv2.imwrite(str(path), arr)
            return path
        path = stem.with_suffix(".npy")
        np.save(path, as_array(value, self.key, where).astype(np.float32))
        return path

    # ------------------------------------------------------------------ options
    def with_options(self: T, **options: Any) -> T:
        """A copy with the given reading options set; options this target does not have, and
        ``None`` values, are ignored (a folder data module passes all of its options)."""
        known = {f.name for f in dataclasses.fields(self)}
        chosen = {k: v for k, v in options.items() if k in known and v is not None}
        return dataclasses.replace(self, **chosen) if chosen else self


# ---------------------------------------------------------------------------------- registry
_REGISTRY: dict[str, type[DenseTarget]] = {}

#: What :func:`get_target` accepts: a registered key, a target, a target class, or a Hydra
#: ``{_target_: ...}`` mapping that builds one.
TargetSpec = str | DenseTarget | type[DenseTarget] | Mapping[str, Any]


def register_target(cls: type[T]) -> type[T]:
    """Class decorator: make ``cls`` reachable by its ``key`` (``target: <key>`` in configs)."""
    old = _REGISTRY.get(cls.key)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__,
                                                                  cls.__qualname__):
        raise ValueError(f"dense target key {cls.key!r} is already taken by "
                         f"{old.__module__}.{old.__qualname__}")
    _REGISTRY[cls.key] = cls
    return cls


def list_targets() -> list[str]:
    """Keys of the registered dense targets."""
    return sorted(_REGISTRY)


def get_target(spec: TargetSpec) -> DenseTarget:
    """The target object for a key, a target (returned as is), a target class or a Hydra
    mapping; unknown keys raise ``ValueError`` listing the registered ones."""
    if isinstance(spec, DenseTarget):
        return spec
    if isinstance(spec, type) and issubclass(spec, DenseTarget):
        return spec()
    if isinstance(spec, Mapping) and "_target_" in spec:
        from hydra.utils import instantiate

        return get_target(instantiate(spec))
    if isinstance(spec, str) and spec in _REGISTRY:
        return _REGISTRY[spec]()
    raise ValueError(f"unknown dense target {spec!r}; registered: {', '.join(list_targets())} "
                     "(or pass a DenseTarget object)")


#: ``(image, target, valid) -> (image, target, valid)`` on NumPy arrays.
Transform = Callable[[np.ndarray, np.ndarray, np.ndarray],
                     tuple[np.ndarray, np.ndarray, np.ndarray]]
