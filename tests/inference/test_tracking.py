"""Track ids stay with their person across frames, through a crossing and a short gap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from sapiens_kit.errors import UserError
from sapiens_kit.inference.tracking import WHOLE_IMAGE_TRACK, PersonTracker


@dataclass
class Detections:
    """Stand-in for ``sapiens_kit.detectors.Detections`` (same fields)."""

    boxes: np.ndarray
    scores: np.ndarray
    source: str = "detector"


def people_at(frame: int) -> np.ndarray:
    """Boxes (x1 y1 x2 y2) of three people: A walks right and B walks left along the same
    line (they cross around frame 12), C stands still below them."""
    a = [10 + 8 * frame, 20, 50 + 8 * frame, 120]
    b = [200 - 8 * frame, 24, 240 - 8 * frame, 124]
    c = [100, 150, 130, 230]
    return np.array([a, b, c], np.float32)


def test_ids_stay_with_people_through_a_crossing_shuffles_and_a_gap() -> None:
    rng = np.random.default_rng(0)
    tracker = PersonTracker(frame_rate=25)
    seen: dict[int, set[int]] = {0: set(), 1: set(), 2: set()}
    for frame in range(30):
        if frame in (20, 21):  # nobody detected for two frames (occlusion, missed detections)
            kept, ids = tracker.update(Detections(np.zeros((0, 4)), np.zeros(0)))
            assert len(kept.boxes) == len(ids) == 0
            continue
        order = rng.permutation(3)  # detectors list people in any order
        boxes = people_at(frame)[order] + rng.normal(0, 1.0, (3, 4)).astype(np.float32)
        kept, ids = tracker.update(Detections(boxes, np.array([0.9, 0.8, 0.95])[order]))
        assert len(ids) == 3 and np.array_equal(kept.boxes, boxes)  # all kept, in input order
        for person, track in zip(order, ids, strict=True):
            seen[int(person)].add(int(track))
    assert all(len(tracks) == 1 for tracks in seen.values()), seen  # one id per person
    assert len(set.union(*seen.values())) == 3  # and three different ids
    assert WHOLE_IMAGE_TRACK not in set.union(*seen.values())


def test_whole_image_boxes_are_not_tracked_people() -> None:
    tracker = PersonTracker(frame_rate=10)
    whole = Detections(np.array([[0, 0, 64, 48]], np.float32), np.ones(1, np.float32),
                       "whole_image")
    kept, ids = tracker.update(whole)
    assert kept is whole and ids.tolist() == [WHOLE_IMAGE_TRACK]


def test_knobs() -> None:
    tracker = PersonTracker(frame_rate=25, lost_track_buffer=5, track_activation_threshold=None)
    assert tracker.knobs["lost_track_buffer"] == 5
    assert tracker.knobs["track_activation_threshold"] == 0.25
    with pytest.raises(UserError, match=r"tracker\.max_age"):
        PersonTracker(frame_rate=25, max_age=3)
    # A low-score box does not start a track.
    kept, ids = PersonTracker.from_config(25, None).update(
        Detections(np.array([[0, 0, 10, 20]], np.float32), np.array([0.1], np.float32)))
    assert len(ids) == 0 and len(kept.boxes) == 0
