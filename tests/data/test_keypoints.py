"""Keypoint sets: presets, user files, conversions between sets by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sapiens_kit.data.keypoints import (
    KeypointSetError,
    convert_keypoints,
    eval_set,
    keypoint_mapping,
    load_keypoint_set,
)
from sapiens_kit.visualize import draw_pose
from tests.helpers import REFERENCE_DIR

REFERENCE = REFERENCE_DIR / "goliath_keypoints.json"


@pytest.mark.parametrize(("name", "k", "links"), [("coco17", 17, 19),
                                                  ("coco_wholebody133", 133, 65),
                                                  ("goliath308", 308, 65)])
def test_presets_are_consistent(name: str, k: int, links: int) -> None:
    kset = load_keypoint_set(name)
    assert kset.num_keypoints == k and len(set(kset.names)) == k
    assert len(kset.sigmas) == k and min(kset.sigmas) > 0
    assert len(kset.skeleton) == links == len(kset.skeleton_colors)
    assert len(kset.keypoint_colors) == k
    flip = np.array(kset.flip_indices)
    assert (flip[flip] == np.arange(k)).all()
    for a, b in kset.flip_pairs:
        if kset.names[a].startswith("left_"):
            assert kset.names[b] == "right_" + kset.names[a][5:]
    assert sum(n for _, n in kset.annotation_fields) == k
    assert kset.parts["body"][:5] == tuple(kset.index(n) for n in
                                           ("nose", "left_eye", "right_eye", "left_ear",
                                            "right_ear"))
    assert kset.spec() == name and load_keypoint_set(kset.to_dict()).names == kset.names


def test_aliases_and_wholebody_facts() -> None:
    assert load_keypoint_set("coco").name == "coco17"
    wb = load_keypoint_set("coco_wholebody")
    assert {p: len(v) for p, v in wb.parts.items()} == {
        "body": 17, "foot": 6, "face": 68, "left_hand": 21, "right_hand": 21}
    assert wb.flip_indices[wb.index("face-0")] == wb.index("face-16")
    assert wb.flip_indices[wb.index("left_thumb4")] == wb.index("right_thumb4")
    assert wb.sigmas[wb.index("right_thumb4")] == pytest.approx(0.047)
    assert [f for f, _ in wb.annotation_fields] == [
        "keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts"]


def test_wholebody_to_goliath_by_name() -> None:
    wb, gol = load_keypoint_set("coco_wholebody133"), load_keypoint_set("goliath308")
    src, dst = keypoint_mapping(wb, gol)
    assert len(src) == 53
    mapping = dict(zip(src.tolist(), dst.tolist(), strict=True))
    assert mapping[wb.index("left_wrist")] == 62 and mapping[wb.index("right_wrist")] == 41
    ref = json.loads(REFERENCE.read_text())
    assert mapping == {int(k): v for k, v in ref["coco_wholebody_to_goliath_mapping"].items()}
    assert gol.flip_indices == ref["flip_indices"]
    assert list(gol.sigmas) == ref["sigmas"]
    kps = np.random.default_rng(0).random((2, 133, 3)).astype(np.float32)
    out = convert_keypoints(kps, wb, gol)
    assert out.shape == (2, 308, 3)
    np.testing.assert_array_equal(out[:, 62], kps[:, wb.index("left_wrist")])
    assert not out[:, gol.index("neck")].any()
    shared = eval_set(wb, gol)
    assert shared.num_keypoints == 53 and shared.parts["body"] == tuple(range(17))
    assert shared.sigmas[:17] == wb.sigmas[:17]
    with pytest.raises(KeypointSetError, match="expected 133"):
        convert_keypoints(kps[:, :17], wb, gol)


def test_user_set_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "markers.yaml"
    path.write_text(
        "names: [head, left_hand, right_hand, tail]\n"
        "flip_pairs: [[left_hand, right_hand]]\n"
        "sigmas: 0.05\n"
        "skeleton: [[head, left_hand], [head, 2]]\n"
        "parts: {upper: [head, left_hand, right_hand], tail: [tail]}\n"
    )
    kset = load_keypoint_set(path)
    assert kset.name == "markers" and kset.num_keypoints == 4
    assert kset.flip_indices == [0, 2, 1, 3]
    assert kset.skeleton == ((0, 1), (0, 2)) and kset.sigmas == (0.05,) * 4
    assert kset.annotation_fields == (("keypoints", 4),)
    assert isinstance(kset.spec(), dict)
    assert load_keypoint_set(kset.spec()).flip_pairs == kset.flip_pairs


@pytest.mark.parametrize(("text", "match"), [
    ("names: [a, b]\n", "sigmas"),
    ("names: [a, a]\nsigmas: 0.1\n", "duplicate"),
    ("names: [a, b]\nsigmas: 0.1\nflip_pairs: [[a, c]]\n", "unknown keypoint 'c'"),
    ("names: [a, b]\nsigmas: [0.1]\n", "needs 2"),
    ("names: [a, b]\nsigmas: 0.1\nannotation_fields: [[keypoints, 3]]\n", "add up"),
])
def test_bad_user_sets_name_the_file(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(KeypointSetError, match=match) as err:
        load_keypoint_set(path)
    assert str(path) in str(err.value)
    with pytest.raises(KeypointSetError, match="does not exist"):
        load_keypoint_set(tmp_path / "missing.json")


def test_draw_pose_marks_the_image() -> None:
    kset = load_keypoint_set("coco17")
    image = np.zeros((64, 48, 3), np.uint8)
    points = np.random.default_rng(1).random((17, 2)) * [47, 63]
    out = draw_pose(image.copy(), points, np.ones(17), kset)
    assert out.shape == image.shape and out.any()
    assert not draw_pose(image.copy(), points, np.zeros(17), kset).any()
