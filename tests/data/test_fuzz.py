"""Property-based tests of every loader and the heatmap codec: random, mutated and truncated inputs
give a valid sample or the kit's own clear exception, never another crash or a hang."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import tempfile
import warnings
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sapiens_kit.codecs.udp_heatmap import UDPHeatmap
from sapiens_kit.data.classes import ClassesFileError, load_classes
from sapiens_kit.data.datasets.coco_keypoints import CocoKeypoints
from sapiens_kit.data.datasets.dense_folder import DenseFolder, read_depth, read_normal
from sapiens_kit.data.datasets.mask_folder import MaskFolder
from sapiens_kit.data.io import DataFileError
from sapiens_kit.data.keypoints import KeypointSetError, load_keypoint_set
from sapiens_kit.data.transforms.dense import DenseEvalTransform
from sapiens_kit.data.transforms.pose import TopdownEvalTransform
from sapiens_kit.data.transforms.seg import SegEvalTransform

#: The kit's own, clear exceptions (all ValueError subclasses that name the file).
KIT_ERRORS = (DataFileError, ClassesFileError, KeypointSetError)
#: A deeper (slower) run: SAPIENS_KIT_FUZZ_EXAMPLES=500 pytest tests/data/test_fuzz.py
FUZZ = settings(max_examples=int(os.environ.get("SAPIENS_KIT_FUZZ_EXAMPLES", 25)), deadline=None,
                derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TIME_LIMIT_S = 10


@contextlib.contextmanager
def time_limit(seconds: int = TIME_LIMIT_S) -> Iterator[None]:
    """Fail an example that hangs (SIGALRM; the tests run in the main thread)."""
    def fire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"loader hung for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def valid_or_kit_error(fn: Callable[[], Any]) -> Any:
    """``fn()``'s result, or None when it raised one of the kit's errors (with a message)."""
    with time_limit():
        try:
            return fn()
        except KIT_ERRORS as err:
            assert str(err).strip()
            return None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12,
)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside a JSON document."""
    out = [prefix]
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) \
        else []
    for k, v in items:
        out += paths(v, (*prefix, k))
    return out


@st.composite
def mutated(draw: st.DrawFn, base: Any, max_edits: int = 3) -> Any:
    """``base`` with a few values replaced by random JSON or deleted."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_edits))):
        where = draw(st.sampled_from(paths(doc)))
        if not where:
            doc = draw(json_values)
            continue
        parent = doc
        for k in where[:-1]:
            parent = parent[k]
        if draw(st.booleans()):
            parent[where[-1]] = draw(json_values)
        elif isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent.pop(where[-1])
    return doc


def file_bytes(valid: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, a truncated valid file, or a valid file with a few bytes flipped."""
    def flip(args: tuple[int, int]) -> bytes:
        pos, val = args
        b = bytearray(valid)
        b[pos % len(b)] = val
        return bytes(b)

    return st.one_of(
        st.binary(max_size=300),
        st.integers(0, len(valid)).map(lambda n: valid[:n]),
        st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)).map(flip),
    )


def png(array: np.ndarray) -> bytes:
    return cv2.imencode(".png", array)[1].tobytes()


def npy(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


# ------------------------------------------------------------------------ classes / keypoints
SAPIENS28 = json.loads(resources.files("sapiens_kit.assets.classes").joinpath(
    "sapiens28.json").read_text())
COCO17 = json.loads(resources.files("sapiens_kit.assets.keypoints").joinpath(
    "coco17.json").read_text())


@FUZZ
@given(doc=mutated(SAPIENS28) | json_values, suffix=st.sampled_from([".json", ".yaml"]))
def test_classes_file_mutations(doc: Any, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"classes{suffix}"
        path.write_text(json.dumps(doc))
        classes = valid_or_kit_error(lambda: load_classes(path))
        if classes is not None:
            assert classes.num_classes == len(classes.names) >= 1


@FUZZ
@given(data=file_bytes(json.dumps(SAPIENS28).encode()))
def test_classes_file_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "classes.json"
        path.write_bytes(data)
        valid_or_kit_error(lambda: load_classes(path))


@FUZZ
@given(doc=mutated(COCO17) | json_values, suffix=st.sampled_from([".json", ".yaml"]))
def test_keypoint_set_file_mutations(doc: Any, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"kps{suffix}"
        path.write_text(json.dumps(doc))
        kset = valid_or_kit_error(lambda: load_keypoint_set(path))
        if kset is not None:
            assert kset.num_keypoints == len(kset.names) >= 1


@FUZZ
@given(data=file_bytes(json.dumps(COCO17).encode()))
def test_keypoint_set_file_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kps.json"
        path.write_bytes(data)
        valid_or_kit_error(lambda: load_keypoint_set(path))


# ------------------------------------------------------------------------------- COCO JSON
def coco_doc() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    kps = []
    for _ in range(17):
        kps += [float(rng.uniform(5, 25)), float(rng.uniform(5, 35)), 2]
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": 30, "height": 40}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "iscrowd": 0,
                         "bbox": [4.0, 4.0, 22.0, 32.0], "area": 704.0, "num_keypoints": 17,
                         "keypoints": kps}],
        "categories": [{"id": 1, "name": "person"}],
    }


COCO = coco_doc()
PERSON = np.random.default_rng(1).integers(0, 255, (40, 30, 3), dtype=np.uint8)


def load_coco(tmp: Path, ann: bytes, image: bytes, train: bool) -> list[dict[str, Any]] | None:
    (tmp / "images").mkdir(exist_ok=True)
    (tmp / "images" / "a.png").write_bytes(image)
    (tmp / "ann.json").write_bytes(ann)

    def run() -> list[dict[str, Any]]:
        ds = CocoKeypoints(tmp / "ann.json", tmp / "images", "coco17",
                           transform=TopdownEvalTransform((32, 24)),
                           codec=UDPHeatmap((32, 24), (8, 6)), train=train)
        return [ds[i] for i in range(min(len(ds), 3))]

    return valid_or_kit_error(run)


@FUZZ
@given(doc=mutated(COCO, max_edits=2), train=st.booleans())
def test_coco_json_mutations(doc: Any, train: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        samples = load_coco(Path(tmp), json.dumps(doc).encode(), png(PERSON), train)
        for s in samples or []:
            assert s["image"].shape == (3, 32, 24) and s["heatmap"].shape == (17, 8, 6)
            assert torch.isfinite(s["heatmap"]).all()


@FUZZ
@given(ann=file_bytes(json.dumps(COCO).encode()), image=file_bytes(png(PERSON)))
def test_coco_file_bytes(ann: bytes, image: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        load_coco(Path(tmp), ann, image, train=False)


def test_valid_coco_gives_a_sample() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        samples = load_coco(Path(tmp), json.dumps(COCO).encode(), png(PERSON), train=True)
    assert samples is not None and len(samples) == 1


# ----------------------------------------------------------------------------- mask folders
IMAGE = np.random.default_rng(2).integers(0, 255, (12, 10, 3), dtype=np.uint8)
MASK = np.random.default_rng(3).integers(0, 3, (12, 10), dtype=np.uint8)


@FUZZ
@given(image=file_bytes(png(IMAGE)),
       mask=file_bytes(png(MASK)) | hnp.arrays(np.uint8, st.tuples(st.integers(1, 14),
                                                                  st.integers(1, 12))).map(png))
def test_mask_folder_files(image: bytes, mask: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        (root / "masks").mkdir()
        (root / "images" / "s.png").write_bytes(image)
        (root / "masks" / "s.png").write_bytes(mask)

        def run() -> dict[str, Any]:
            return MaskFolder(root, num_classes=3, transform=SegEvalTransform((16, 16)))[0]

        sample = valid_or_kit_error(run)
        if sample is not None:
            assert sample["image"].shape == (3, 16, 16)
            labels = set(sample["mask"].unique().tolist())
            assert labels <= {0, 1, 2, 255}


# ----------------------------------------------------------------------- depth / normal files
DEPTH = np.random.default_rng(4).uniform(0.5, 4, (12, 10)).astype(np.float32)
NORMAL = np.random.default_rng(5).uniform(-1, 1, (12, 10, 3)).astype(np.float32)
dtypes = st.sampled_from([np.float32, np.float64, np.float16, np.uint8, np.uint16, np.int32,
                          np.bool_, np.complex64])
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=13)


@FUZZ
@given(data=file_bytes(npy(DEPTH)) | hnp.arrays(dtypes, shapes).map(npy),
       suffix=st.sampled_from([".npy", ".png", ".exr", ".tiff"]))
def test_depth_files(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"d{suffix}"
        path.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)  # no silent garbage
            depth = valid_or_kit_error(lambda: read_depth(path))
        if depth is not None:
            assert depth.ndim == 2 and depth.dtype == np.float32


@FUZZ
@given(data=file_bytes(npy(NORMAL)) | hnp.arrays(dtypes, shapes).map(npy),
       suffix=st.sampled_from([".npy", ".png", ".exr"]))
def test_normal_files(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"n{suffix}"
        path.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            normal = valid_or_kit_error(lambda: read_normal(path))
        if normal is not None:
            assert normal.ndim == 3 and normal.shape[2] == 3


@FUZZ
@given(target=st.sampled_from(["depth", "normal"]),
       array=hnp.arrays(np.float32, st.sampled_from([(12, 10), (12, 10, 3), (11, 10), (12, 10, 1)]),
                        elements=st.floats(width=32)),
       mask=st.none() | file_bytes(png((MASK > 0).astype(np.uint8) * 255)))
def test_dense_folder_samples(target: str, array: np.ndarray, mask: bytes | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for sub in ("images", target) + (("mask",) if mask is not None else ()):
            (root / sub).mkdir()
        (root / "images" / "s.png").write_bytes(png(IMAGE))
        np.save(root / target / "s.npy", array)
        if mask is not None:
            (root / "mask" / "s.png").write_bytes(mask)

        def run() -> dict[str, Any]:
            return DenseFolder(root, target, transform=DenseEvalTransform((16, 16)))[0]

        sample = valid_or_kit_error(run)
        if sample is not None:
            assert torch.isfinite(sample[target]).all()
            assert sample["valid_mask"].dtype == torch.bool


# ------------------------------------------------------------------------------------ codec
sizes = st.tuples(st.integers(2, 40), st.integers(2, 40))
coords = st.floats(allow_nan=True, allow_infinity=True, width=32)


@FUZZ
@given(input_size=sizes, heatmap_size=sizes, k=st.integers(1, 5), data=st.data())
def test_codec_encode_random_keypoints(input_size: tuple[int, int],
                                       heatmap_size: tuple[int, int], k: int,
                                       data: st.DataObject) -> None:
    codec = UDPHeatmap(input_size, heatmap_size)
    kp = data.draw(hnp.arrays(np.float32, (k, 2), elements=coords))
    vis = data.draw(hnp.arrays(np.float32, (k,), elements=coords))
    with time_limit():
        heatmaps, weights = codec.encode(kp, vis)
    assert heatmaps.shape == (k, *heatmap_size) and weights.shape == (k,)
    assert torch.isfinite(heatmaps).all() and heatmaps.min() >= 0 and heatmaps.max() <= 1
    assert set(weights.unique().tolist()) <= {0.0, 1.0}


@FUZZ
@given(heatmaps=hnp.arrays(np.float32, st.tuples(st.integers(1, 2), st.integers(1, 3),
                                                 st.integers(1, 12), st.integers(1, 12)),
                           elements=st.floats(-1e4, 1e4, width=32)))
def test_codec_decode_random_heatmaps(heatmaps: np.ndarray) -> None:
    codec = UDPHeatmap((32, 24), heatmaps.shape[2:])
    with time_limit():
        keypoints, scores = codec.decode(torch.from_numpy(heatmaps))
    b, k = heatmaps.shape[:2]
    assert keypoints.shape == (b, k, 2) and scores.shape == (b, k)
    assert torch.isfinite(keypoints).all()


# -------------------------------------------------------------- predict never writes over inputs
parts = st.lists(st.sampled_from(["a", "b", "in", "out", ".."]), min_size=0, max_size=3)


@FUZZ
@given(out_parts=parts, in_parts=parts, in_is_file=st.booleans(), out_has_file=st.booleans(),
       overwrite=st.booleans())
def test_predict_output_rule(out_parts: list[str], in_parts: list[str], in_is_file: bool,
                             out_has_file: bool, overwrite: bool) -> None:
    from sapiens_kit.predict import check_output
    from sapiens_kit.utils.cli import UserError

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "x" / "y"
        inputs = base.joinpath(*in_parts)
        inputs.mkdir(parents=True, exist_ok=True)
        if in_is_file:
            inputs = inputs / "photo.png"
            inputs.write_bytes(png(IMAGE))
        output = base.joinpath(*out_parts)
        in_dir = (inputs if inputs.is_dir() else inputs.parent).resolve()
        inside = output.resolve() == in_dir or in_dir in output.resolve().parents
        if out_has_file and not inside and not output.resolve() == inputs.resolve():
            output.mkdir(parents=True, exist_ok=True)
            (output / "old.txt").write_text("keep")
        before = sorted(str(p) for p in Path(tmp).rglob("*"))
        try:
            check_output(output, inputs, overwrite)
            allowed = True
        except UserError:
            allowed = False
        assert sorted(str(p) for p in Path(tmp).rglob("*")) == before  # checking writes nothing
        if inside:
            assert not allowed  # never into the input folder, even with overwrite=true
        elif output.exists() and any(output.iterdir()) and not overwrite:
            assert not allowed
