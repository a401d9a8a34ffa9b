"""How tracks and detections are paired: distance functions and the assignment.

The tracker takes its distances as arguments (as norfair does), so that a stream with
other needs — no appearance, another cue, another gate — changes a function, not the
tracker. A distance function maps the tracks' and the detections' :class:`Candidates`
to an (M, N) cost matrix: lower is better, ``inf`` means "never pair these".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

from streamer.config import TrackerConfig
from streamer.tracking.appearance import appearance_distance
from workers.boxes import iou_matrix

_NEVER = 1e9   # stands in for inf inside the assignment, which needs finite costs


@dataclass
class Candidates:
    """Boxes to pair: predicted boxes of tracks, or measured boxes of detections."""

    boxes: np.ndarray                 # (N, 4) x1, y1, x2, y2
    embeddings: np.ndarray | None     # (N, D) unit rows (streamer.tracking.appearance), or None

    def take(self, rows: list[int]) -> "Candidates":
        return Candidates(self.boxes[rows], None if self.embeddings is None else self.embeddings[rows])


Distance = Callable[[Candidates, Candidates], np.ndarray]


def _both(tracks: Candidates, dets: Candidates) -> tuple[np.ndarray, np.ndarray] | None:
    """Both sides' embeddings, or None when either side has none."""
    if tracks.embeddings is None or dets.embeddings is None:
        return None
    return tracks.embeddings, dets.embeddings


def motion_appearance(cfg: TrackerConfig) -> Distance:
    """The default for following tracks: ``1 - IoU`` with the Kalman-predicted box, plus
    ``cfg.appearance_weight`` × appearance distance when both sides have embeddings.

    IoU alone cannot tell two faces apart while they overlap; the appearance term breaks
    that tie, and its gate forbids a track to continue on a face that looks unlike it
    (the face that hid it, say) however well the boxes overlap.
    """
    def distance(tracks: Candidates, dets: Candidates) -> np.ndarray:
        iou = iou_matrix(tracks.boxes, dets.boxes)
        cost, allowed = 1.0 - iou, iou >= cfg.match_iou
        both = _both(tracks, dets)
        if both is not None:
            app = appearance_distance(*both)
            cost = cost + cfg.appearance_weight * app
            allowed &= app <= cfg.appearance_gate
        return np.where(allowed, cost, np.inf)
    return distance


def reacquire(cfg: TrackerConfig) -> Distance:
    """The default for taking back a lost face: by appearance, anywhere in the frame (a
    face may come back far from where its motion model went: it turned back while
    hidden, or left at one edge and returned at another), with a size within
    ``cfg.reacquire_scale`` of the track's. Within ``cfg.reacquire_near`` box sides of
    the predicted box the usual ``appearance_gate`` applies (a face coming out from
    behind another is still partly covered); farther away only a face as alike as
    ``cfg.reacquire_distance``, so that a stranger does not take the id. Without
    embeddings nothing is re-acquired."""
    def distance(tracks: Candidates, dets: Candidates) -> np.ndarray:
        both = _both(tracks, dets)
        if both is None:
            return np.full((len(tracks.boxes), len(dets.boxes)), np.inf)
        app = appearance_distance(*both)
        side_t = _side(tracks.boxes)[:, None]
        side_d = _side(dets.boxes)[None, :]
        ratio = np.maximum(side_t, side_d) / np.maximum(np.minimum(side_t, side_d), 1e-9)
        shift = np.linalg.norm(_centre(tracks.boxes)[:, None] - _centre(dets.boxes)[None], axis=-1)
        limit = np.where(shift <= cfg.reacquire_near * side_t, cfg.appearance_gate, cfg.reacquire_distance)
        allowed = (app <= limit) & (ratio <= cfg.reacquire_scale)
        return np.where(allowed, app, np.inf)
    return distance


def _centre(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def _side(boxes: np.ndarray) -> np.ndarray:
    return np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))


def assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one pairs (row, column) among the finite entries of ``cost``."""
    if cost.size == 0:
        return []
    finite = np.isfinite(cost)
    rows, cols = linear_sum_assignment(np.where(finite, cost, _NEVER))
    return [(r, c) for r, c in zip(rows.tolist(), cols.tolist()) if finite[r, c]]
