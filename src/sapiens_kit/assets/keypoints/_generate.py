"""Regenerate the keypoint-set JSON files in this folder from published facts.

``coco17`` and ``coco_wholebody133`` are written from the COCO (Lin et al. 2014) and
COCO-WholeBody (Jin et al. 2020) keypoint definitions: names and order, left/right swaps, OKS
sigmas and the usual skeleton with its colours. ``goliath308`` is converted from the reference
extraction of the Sapiens Goliath metainfo (``goliath_keypoints.json``, 308 points, teeth removed).

Run ``python -m sapiens_kit.assets.keypoints._generate [path/to/goliath_keypoints.json]``.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_GOLIATH = Path("/work/shared/reference/goliath_keypoints.json")

BODY = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
]
FOOT = ["left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe",
        "right_heel"]
FINGERS = ["thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger"]

# COCO OKS sigmas (cocoapi) and the COCO-WholeBody extension (myeval_wholebody.py).
SIGMAS_BODY = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
               0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
SIGMAS_FOOT = [0.068, 0.066, 0.066, 0.092, 0.094, 0.094]
SIGMAS_FACE = [
    0.042, 0.043, 0.044, 0.043, 0.040, 0.035, 0.031, 0.025, 0.020, 0.023, 0.029, 0.032, 0.037,
    0.038, 0.043, 0.041, 0.045, 0.013, 0.012, 0.011, 0.011, 0.012, 0.012, 0.011, 0.011, 0.013,
    0.015, 0.009, 0.007, 0.007, 0.007, 0.012, 0.009, 0.008, 0.016, 0.010, 0.017, 0.011, 0.009,
    0.011, 0.009, 0.007, 0.013, 0.008, 0.011, 0.012, 0.010, 0.034, 0.008, 0.008, 0.009, 0.008,
    0.008, 0.007, 0.010, 0.008, 0.009, 0.009, 0.009, 0.007, 0.007, 0.008, 0.011, 0.008, 0.008,
    0.008, 0.01, 0.008,
]
SIGMAS_HAND = [0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024,
               0.022, 0.026, 0.017, 0.021, 0.021, 0.032, 0.02, 0.019, 0.022, 0.031]

# The 68-point (iBUG 300-W) face layout mirrored left/right: jaw, brows, nose, eyes, mouth.
FACE_SWAPS = [(0, 16), (1, 15), (2, 14), (3, 13), (4, 12), (5, 11), (6, 10), (7, 9),
              (17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (31, 35), (32, 34),
              (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
              (48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]

HEAD, LEFT, RIGHT = [51, 153, 255], [0, 255, 0], [255, 128, 0]
WHITE = [255, 255, 255]
FINGER_COLOURS = {"thumb": [255, 128, 0], "forefinger": [255, 153, 255],
                  "middle_finger": [102, 178, 255], "ring_finger": [255, 51, 51],
                  "pinky_finger": [0, 255, 0]}

BODY_LINKS = [
    ("left_ankle", "left_knee", LEFT), ("left_knee", "left_hip", LEFT),
    ("right_ankle", "right_knee", RIGHT), ("right_knee", "right_hip", RIGHT),
    ("left_hip", "right_hip", HEAD), ("left_shoulder", "left_hip", HEAD),
    ("right_shoulder", "right_hip", HEAD), ("left_shoulder", "right_shoulder", HEAD),
    ("left_shoulder", "left_elbow", LEFT), ("right_shoulder", "right_elbow", RIGHT),
    ("left_elbow", "left_wrist", LEFT), ("right_elbow", "right_wrist", RIGHT),
    ("left_eye", "right_eye", HEAD), ("nose", "left_eye", HEAD), ("nose", "right_eye", HEAD),
    ("left_eye", "left_ear", HEAD), ("right_eye", "right_ear", HEAD),
    ("left_ear", "left_shoulder", HEAD), ("right_ear", "right_shoulder", HEAD),
]


def swap_name(name: str) -> str:
    """Left/right counterpart of a COCO(-WholeBody) name, or the name itself."""
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


def body_colour(name: str) -> list[int]:
    """COCO keypoint colour: head/centre blue, left green, right orange."""
    if name in BODY[:5]:
        return HEAD
    return LEFT if name.startswith("left_") else RIGHT


def hand_names(side: str) -> list[str]:
    """21 hand points: root then 4 joints per finger, base to tip."""
    return [f"{side}_hand_root"] + [f"{side}_{f}{j}" for f in FINGERS for j in range(1, 5)]


def coco17() -> dict[str, Any]:
    """COCO person keypoints."""
    names = list(BODY)
    return {
        "name": "coco17",
        "source": "COCO keypoints (Lin et al., ECCV 2014); sigmas from cocoapi",
        "names": names,
        "flip_pairs": _pairs(names),
        "sigmas": SIGMAS_BODY,
        "skeleton": [[a, b] for a, b, _ in BODY_LINKS],
        "skeleton_colors": [c for *_, c in BODY_LINKS],
        "keypoint_colors": [body_colour(n) for n in names],
        "parts": {"body": list(range(17))},
        "upper_body": list(range(11)),
        "lower_body": list(range(11, 17)),
        "annotation_fields": [["keypoints", 17]],
    }


def coco_wholebody133() -> dict[str, Any]:
    """COCO-WholeBody: body 17, feet 6, face 68, left hand 21, right hand 21."""
    face = [f"face-{i}" for i in range(68)]
    names = BODY + FOOT + face + hand_names("left") + hand_names("right")
    pairs = _pairs(names) + [[f"face-{a}", f"face-{b}"] for a, b in FACE_SWAPS]
    links = list(BODY_LINKS)
    for side, colour in (("left", LEFT), ("right", RIGHT)):
        links += [(f"{side}_ankle", f"{side}_{p}", colour)
                  for p in ("big_toe", "small_toe", "heel")]
    for side in ("left", "right"):
        for finger in FINGERS:
            joints = [f"{side}_wrist"] + [f"{side}_{finger}{j}" for j in range(1, 5)]
            links += [(a, b, FINGER_COLOURS[finger]) for a, b in itertools.pairwise(joints)]
    colours = ([body_colour(n) for n in BODY] + [RIGHT] * 6 + [WHITE] * 68
               + 2 * ([WHITE] + [FINGER_COLOURS[f] for f in FINGERS for _ in range(4)]))
    return {
        "name": "coco_wholebody133",
        "source": "COCO-WholeBody (Jin et al., ECCV 2020); sigmas from its myeval_wholebody.py",
        "names": names,
        "flip_pairs": pairs,
        "sigmas": SIGMAS_BODY + SIGMAS_FOOT + SIGMAS_FACE + SIGMAS_HAND + SIGMAS_HAND,
        "skeleton": [[a, b] for a, b, _ in links],
        "skeleton_colors": [c for *_, c in links],
        "keypoint_colors": colours,
        "parts": {
            "body": list(range(0, 17)), "foot": list(range(17, 23)),
            "face": list(range(23, 91)), "left_hand": list(range(91, 112)),
            "right_hand": list(range(112, 133)),
        },
        "upper_body": list(range(11)),
        "lower_body": list(range(11, 23)),
        "annotation_fields": [["keypoints", 17], ["foot_kpts", 6], ["face_kpts", 68],
                              ["lefthand_kpts", 21], ["righthand_kpts", 21]],
    }


def goliath308(ref: dict[str, Any]) -> dict[str, Any]:
    """Sapiens Goliath-308 from the reference extraction of the official metainfo."""
    names = ref["names"]
    if len(names) != 308:
        raise ValueError(f"expected 308 Goliath names, got {len(names)}")
    groups = ref["groups"]
    return {
        "name": "goliath308",
        "source": ref["source"],
        "names": names,
        "flip_pairs": [[names[a], names[b]] for a, b in ref["flip_pairs"]],
        "sigmas": ref["sigmas"],
        "skeleton": [link["link_names"] for link in ref["skeleton_links"]],
        "skeleton_colors": [link["color_rgb"] for link in ref["skeleton_links"]],
        "keypoint_colors": [k["color_rgb"] for k in ref["keypoints"]],
        "parts": {
            "body": groups["body"]["indices"], "foot": groups["foot"]["indices"],
            "face": groups["face"]["indices"], "left_hand": groups["left_hand"]["indices"],
            "right_hand": groups["right_hand"]["indices"], "extra": groups["extra"]["indices"],
        },
        "upper_body": ref["upper_body_ids"],
        "lower_body": ref["lower_body_ids"],
        "annotation_fields": [["goliath_wholebody_kpts", 308]],
    }


def _pairs(names: list[str]) -> list[list[str]]:
    return [[n, swap_name(n)] for n in names if n.startswith("left_") and swap_name(n) in names]


def main(argv: list[str]) -> None:
    """Write the three JSON files next to this script."""
    sets = [coco17(), coco_wholebody133()]
    ref_path = Path(argv[0]) if argv else DEFAULT_GOLIATH
    sets.append(goliath308(json.loads(ref_path.read_text())))
    for data in sets:
        path = HERE / f"{data['name']}.json"
        path.write_text(_dump(data) + "\n")
        print(f"wrote {path} ({len(data['names'])} keypoints)")


def _dump(data: dict[str, Any]) -> str:
    # One list per line keeps the files diffable without one number per line.
    lines = ["{"]
    items = list(data.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if isinstance(value, dict):
            inner = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items())
            lines.append(f"  {json.dumps(key)}: {{\n{inner}\n  }}{comma}")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
