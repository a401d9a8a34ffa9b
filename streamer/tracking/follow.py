"""One stream's faces, with the detector run only when needed.

Face-mesh trackers place each face's next crop from what the model just said about that
face; the detector is needed only to find new faces, to re-anchor, and to confirm a face
that the model doubts. :class:`Follower` is that loop for one stream, in three calls
made by the session's stages (which run concurrently, so the model's answer for a frame
comes back a few frames after that frame was tracked):

1. :meth:`plan`, for each frame in order as it is read: is it a hard cut, and does it go
   to the detector (:class:`~streamer.tracking.schedule.DetectionSchedule`)?
2. :meth:`track`, in frame order: the tracker takes the detections of a detected frame
   (``box_source`` "detector"), or follows its tracks with the newest boxes the
   regressor gave (``box_source`` "tracking");
3. :meth:`observe`, when the regressor's output for a frame comes back: its landmarks
   become each track's box (:mod:`streamer.tracking.placement`), and a presence below the probe's
   threshold asks for the detector at once and marks the track: it ends unless that
   detector run confirms it. A network shipped without a presence probe cannot tell a
   lost crop, so the session gives it every_frames 1 (every frame detected); a NaN
   presence on one face leaves that face to the schedule.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamer.config import TrackerConfig
from streamer.sources.frames import Frame
from streamer.tracking.cuts import CutDetector
from streamer.tracking.placement import apply_relation, box_relation, boxes_in_image
from streamer.tracking.schedule import DetectionPhase, DetectionSchedule
from streamer.tracking.tiles import DetectionPlan, TileRotation
from streamer.tracking.tracker import Track, Tracker


@dataclass(frozen=True)
class FramePlan:
    """What :meth:`Follower.plan` decided for one frame as it was read; the session carries
    it from its read stage to its track stage, which needs both answers again."""

    cut: bool      # a hard shot cut starts at this frame: every track ends
    detect: bool   # the frame goes to the detector (else its tracks are followed)
    # what the detector sees of it (the whole frame, a tile: streamer.tracking.tiles);
    # empty when it is not detected or the follower was given no TileRotation
    regions: DetectionPlan = DetectionPlan()


class Follower:
    def __init__(self, cfg: TrackerConfig, every_frames: int, presence_threshold: float | None,
                 first_id: int = 1, phase: DetectionPhase | None = None,
                 regions: TileRotation | None = None) -> None:
        self.tracker = Tracker(cfg, first_id=first_id)
        self.regions = regions
        self.schedule = DetectionSchedule(every_frames, phase)
        self._cuts = CutDetector(cfg) if cfg.cuts else None
        self._threshold = presence_threshold
        self._seen: dict[int, tuple[int, np.ndarray]] = {}   # track id -> (frame, box) newest
        self._detected: dict[int, dict[int, np.ndarray]] = {}  # frame -> {track id: detector box}
        self._calibration: dict[int, np.ndarray] = {}  # track id -> detector box relative to its landmark box
        self._doubted: set[int] = set()
        self._last_detected = -1

    def plan(self, frame: Frame) -> FramePlan:
        """Whether the next frame read is a cut and goes to the detector; called once per
        frame, in order."""
        cut = self._cuts is not None and self._cuts.update(frame.image)
        detect = self.schedule.due(frame.index, cut, frame.captured)
        if not detect or self.regions is None:
            return FramePlan(cut, detect)
        h, w = frame.image.shape[:2]
        return FramePlan(cut, detect, self.regions.plan(w, h))

    def track(self, frame: Frame, cut: bool, boxes: np.ndarray | None = None,
              scores: np.ndarray | None = None, regions: DetectionPlan | None = None) -> list[Track]:
        """The frame's tracked faces: from its detections (``boxes``, ``scores`` in frame
        pixels; ``regions``: what the detector saw, when only a tile at full resolution), or,
        when it was not detected (``boxes`` None), followed. Afterwards
        ``tracker.ended_ids`` says which tracks ended here."""
        if boxes is None:
            tracks = self.tracker.follow(frame.index, self._seen)
        else:
            if scores is None:
                raise ValueError("detected boxes need their scores")
            tracks = self.tracker.update(boxes, scores, frame.index, image=frame.image, cut=cut,
                                         confirm=frozenset(self._doubted),
                                         sees=regions.sees if regions is not None and regions.tiled else None)
            self._doubted.clear()
            self._last_detected = frame.index
            self._detected[frame.index] = {t.track_id: t.box for t in tracks if t.source == "detector"}
        for track_id in self.tracker.ended_ids:
            self._seen.pop(track_id, None)
            self._calibration.pop(track_id, None)
        return tracks

    def observe(self, frame_index: int, track_ids: list[int], landmarks: np.ndarray,
                affines: np.ndarray, presence: np.ndarray) -> None:
        """The regressor's output for the faces ``track_ids`` of frame ``frame_index``:
        landmarks (N, 68, 2) in the pixels of the crops cut with ``affines``, presence (N,)."""
        alive = self.tracker.ids()
        boxes = boxes_in_image(landmarks, affines)
        detected = self._detected.pop(frame_index, {})
        for f in [f for f in self._detected if f < frame_index]:   # frames that had no faces to regress
            del self._detected[f]
        for track_id, box, p in zip(track_ids, boxes, presence):
            if track_id not in alive:
                continue
            # The landmark box of a face differs from the detector's by a few % of the side,
            # the same way frame after frame (the fitted rule is an average over faces).
            # Measured against the detector on the frames it ran, that offset is taken out
            # of the followed ones; else each detector run would jump the crop back and
            # the pose of a still face would saw-tooth with the schedule.
            if track_id in detected:
                self._calibration[track_id] = box_relation(detected[track_id], box)
                box = detected[track_id]
            elif track_id in self._calibration:
                box = apply_relation(self._calibration[track_id], box)
            newest = self._seen.get(track_id)
            if newest is None or frame_index > newest[0]:
                self._seen[track_id] = (frame_index, box)
            # a doubt from before the last detector run was settled by that run
            if self._threshold is not None and p < self._threshold and frame_index > self._last_detected:
                self._doubted.add(track_id)
                self.schedule.request()
