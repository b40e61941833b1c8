"""Person tracking across video frames: every person keeps a ``track_id``.

A thin wrapper around supervision's ByteTrack (MIT; Zhang et al., ECCV 2022), a Kalman
filter plus two rounds of IoU matching (high-score boxes first, then low-score ones to keep
tracks alive through occlusion). The kit does not hand-write a tracker.

The knobs are ByteTrack's own (predict's ``tracker.*`` keys):

=================================  ======  ===================================================
``track_activation_threshold``     0.25    box score needed to start a track
``lost_track_buffer``              30      frames (at 30 fps) a lost track is kept for re-match
``minimum_matching_threshold``     0.8     IoU-cost threshold of a match (higher: looser)
``minimum_consecutive_frames``     1       frames a track needs before it gets an id
=================================  ======  ===================================================
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from sapiens_kit.errors import UserError

if TYPE_CHECKING:
    from sapiens_kit.detectors import Detections

#: ByteTrack's knobs, as predict's ``tracker.*`` keys, with supervision's defaults.
TRACKER_KNOBS: dict[str, float | int] = {
    "track_activation_threshold": 0.25,
    "lost_track_buffer": 30,
    "minimum_matching_threshold": 0.8,
    "minimum_consecutive_frames": 1,
}
#: The id of a whole-image box (no person was detected in that frame): not a tracked person.
WHOLE_IMAGE_TRACK = 0


class PersonTracker:
    """Track the people of consecutive frames (one instance per video).

    Args:
        frame_rate: Frames per second of the frames given to :meth:`update` (the video's rate
            divided by the stride): ByteTrack scales ``lost_track_buffer`` by it.
        **knobs: ByteTrack's knobs (see the module docstring); ``None`` keeps the default.
    """

    def __init__(self, frame_rate: float, **knobs: Any) -> None:
        unknown = sorted(set(knobs) - set(TRACKER_KNOBS))
        if unknown:
            raise UserError(f"tracker.{unknown[0]}: unknown tracker option (known: "
                            f"{', '.join(TRACKER_KNOBS)})")
        given = {k: v for k, v in knobs.items() if v is not None}
        with warnings.catch_warnings():
            # ByteTrack is deprecated in supervision 0.28-0.30 in favour of the `trackers`
            # package, whose opencv-python requirement clashes with opencv-python-headless.
            warnings.simplefilter("ignore")
            from supervision import ByteTrack

            self._tracker = ByteTrack(frame_rate=float(frame_rate), **given)
        self.knobs = {**TRACKER_KNOBS, **given}
        self.frames = 0

    @classmethod
    def from_config(cls, frame_rate: float, cfg: Mapping[str, Any] | None) -> PersonTracker:
        """A tracker with predict's ``tracker`` node (``None``: the defaults)."""
        return cls(frame_rate, **dict(cfg or {}))

    def update(self, detections: Detections) -> tuple[Detections, np.ndarray]:
        """Feed one frame's people; returns the ones that belong to a track and their ids.

        The kept detections keep their input order. A new person gets an id on the frame it
        is first confirmed (at once on the first frame, with ``minimum_consecutive_frames=1``).
        Boxes a detector did not find (``source="whole_image"``) are passed through with id
        :data:`WHOLE_IMAGE_TRACK`, and the frame still ages the live tracks.
        """
        import supervision as sv

        self.frames += 1
        boxes = np.asarray(detections.boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(detections.scores, dtype=np.float32).reshape(-1)
        whole = getattr(detections, "source", "detector") == "whole_image"
        found = sv.Detections(xyxy=boxes[:0] if whole else boxes,
                              confidence=scores[:0] if whole else scores,
                              data={"index": np.arange(0 if whole else len(boxes))})
        tracked = self._tracker.update_with_detections(found)
        if whole:
            return detections, np.full(len(boxes), WHOLE_IMAGE_TRACK, dtype=np.int64)
        index = np.asarray(tracked.data.get("index", np.zeros(0, int)), dtype=np.int64)
        ids = np.asarray(tracked.tracker_id if tracked.tracker_id is not None else [],
                         dtype=np.int64)
        order = np.argsort(index, kind="stable")  # input order, whatever the tracker returns
        index, ids = index[order], ids[order]
        kept = dataclasses.replace(detections, boxes=boxes[index], scores=scores[index])
        return kept, ids

    def reset(self) -> None:
        """Forget every track (a new video)."""
        self._tracker.reset()
        self.frames = 0


__all__ = ["TRACKER_KNOBS", "WHOLE_IMAGE_TRACK", "PersonTracker"]
