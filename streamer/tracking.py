"""ByteTrack-style multi-face tracker (Zhang et al., ECCV 2022), in numpy.

Why ByteTrack: faces that turn, blur or are half occluded get low detector scores for a
few frames. Dropping those boxes breaks tracks and makes new ids; keeping them all makes
false tracks. ByteTrack keeps both: high-score boxes are matched first, then low-score
boxes may only *continue* tracks that were being followed, never start one.

Motion is a constant-velocity Kalman filter on (cx, cy, w, h), predicted over the real
gap between processed frames (``frame_index`` differences), so sampling every k-th frame
or dropping frames of a live stream only widens the prediction, it does not break it.
Ids are integers from 1, handed out when a track is confirmed, and never reused.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from streamer.config import TrackerConfig

# Noise as fractions of the box size, per frame (DeepSORT's choice): a large face moves
# and jitters more pixels than a small one.
_STD_POS = 1.0 / 20.0
_STD_VEL = 1.0 / 160.0


@dataclass
class Track:
    """One detection assigned to a confirmed track in this frame."""

    track_id: int
    box: np.ndarray     # (4,) x1, y1, x2, y2: the detection's box as measured
    score: float
    det_index: int      # row of the detection in the arrays given to update()


def _to_xywh(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])


class _Kalman:
    """Constant-velocity Kalman filter on state (cx, cy, w, h, vcx, vcy, vw, vh).

    Velocities are per frame; a gap of dt frames applies dt steps of motion and dt
    frames' worth of process noise.
    """

    def __init__(self, box: np.ndarray):
        z = _to_xywh(box)
        self.x = np.concatenate([z, np.zeros(4)])
        s = self._size()
        std = np.concatenate([2 * _STD_POS * s, 10 * _STD_VEL * s])
        self.P = np.diag(std**2)

    def _size(self) -> np.ndarray:
        w, h = np.maximum(self.x[2:4], 1.0)
        return np.array([w, h, w, h])

    def predict(self, dt: int) -> None:
        F = np.eye(8)
        F[:4, 4:] = dt * np.eye(4)
        s = self._size()
        Q = np.diag(np.concatenate([_STD_POS * s, _STD_VEL * s]) ** 2) * dt
        self.x = F @ self.x
        self.P = F @ self.P @ F.T + Q

    def update(self, box: np.ndarray) -> None:
        R = np.diag((_STD_POS * self._size()) ** 2)
        S = self.P[:4, :4] + R
        K = np.linalg.solve(S, self.P[:4, :]).T     # P Hᵀ S⁻¹ with H = [I 0]
        self.x = self.x + K @ (_to_xywh(box) - self.x[:4])
        self.P = self.P - K @ self.P[:4, :]

    def hold_size(self) -> None:
        """Stop size drift while the face is unseen (ByteTrack zeroes it likewise)."""
        self.x[6:8] = 0.0

    def box(self) -> np.ndarray:
        cx, cy = self.x[:2]
        w, h = np.maximum(self.x[2:4], 0.0)
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


class _Tracklet:
    def __init__(self, box: np.ndarray, frame_index: int):
        self.kf = _Kalman(box)
        self.hits = 1
        self.last_seen = frame_index
        self.track_id: int | None = None   # set on confirmation
        self.lost = False


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a (M, 4) and b (N, 4), x1y1x2y2."""
    a = a[:, None, :]
    b = b[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _match(tracks: list[_Tracklet], boxes: np.ndarray, dets: list[int], min_iou: float):
    """Hungarian assignment on 1 - IoU between predicted track boxes and boxes[dets].

    Returns (pairs of (track, det index), unmatched tracks, unmatched det indices).
    """
    if not tracks or not dets:
        return [], list(tracks), list(dets)
    iou = iou_matrix(np.stack([t.kf.box() for t in tracks]), boxes[dets])
    rows, cols = linear_sum_assignment(1.0 - iou)
    keep = [(r, c) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]
    used_t = {r for r, _ in keep}
    used_d = {c for _, c in keep}
    return ([(tracks[r], dets[c]) for r, c in keep],
            [t for i, t in enumerate(tracks) if i not in used_t],
            [d for j, d in enumerate(dets) if j not in used_d])


class Tracker:
    """Tracks the faces of one stream; call :meth:`update` once per processed frame.

    ``frame_index`` must increase from call to call; gaps are allowed and
    ``cfg.max_lost_frames`` counts source frames, not calls, so a track survives the same
    time whatever the sampling. After each update, :attr:`ended_ids` lists the ids of
    tracks that the update removed (so the caller can drop per-track state).
    """

    def __init__(self, cfg: TrackerConfig | None = None, first_id: int = 1):
        self.cfg = cfg or TrackerConfig()
        self._tracks: list[_Tracklet] = []
        self._next_id = first_id   # a resumed stream continues above the ids it used
        self._frame: int | None = None
        self.ended_ids: list[int] = []

    def update(self, boxes, scores, frame_index: int) -> list[Track]:
        cfg = self.cfg
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(boxes) != len(scores):
            raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
        if self._frame is not None and frame_index <= self._frame:
            raise ValueError(f"frame_index {frame_index} does not follow {self._frame}")
        if self._frame is not None:
            for t in self._tracks:
                t.kf.predict(frame_index - self._frame)
        self._frame = frame_index

        high = np.flatnonzero(scores >= cfg.high_score).tolist()
        low = np.flatnonzero((scores >= cfg.low_score) & (scores < cfg.high_score)).tolist()
        confirmed = [t for t in self._tracks if t.track_id is not None]
        tentative = [t for t in self._tracks if t.track_id is None]

        # 1: high-score boxes against every confirmed track, followed or lost.
        pairs, rest, high_left = _match(confirmed, boxes, high, cfg.match_iou)
        # 2: low-score boxes may only continue tracks followed up to the previous frame.
        followed = [t for t in rest if not t.lost]
        pairs2, unfollowed, _ = _match(followed, boxes, low, cfg.match_iou)
        # 3: remaining high-score boxes against tracks not yet confirmed.
        pairs3, _, high_left = _match(tentative, boxes, high_left, cfg.match_iou)

        for t, d in pairs + pairs2 + pairs3:
            t.kf.update(boxes[d])
            t.hits += 1
            t.last_seen = frame_index
            t.lost = False
        for t in unfollowed:
            t.lost = True
            t.kf.hold_size()

        born = [(_Tracklet(boxes[d], frame_index), d)
                for d in high_left if scores[d] >= cfg.new_track_score]
        assigned = pairs + pairs2 + pairs3 + born
        for t, _ in assigned:
            if t.track_id is None and t.hits >= cfg.min_hits:
                t.track_id = self._next_id
                self._next_id += 1

        # Unmatched tentative tracks die at once: a face must be seen in consecutive
        # processed frames to be confirmed.
        alive = [t for t in confirmed if frame_index - t.last_seen <= cfg.max_lost_frames]
        self.ended_ids = [t.track_id for t in confirmed if t not in alive]
        self._tracks = alive + [t for t, _ in pairs3 + born]

        out = [Track(t.track_id, boxes[d].copy(), float(scores[d]), d)
               for t, d in assigned if t.track_id is not None]
        return sorted(out, key=lambda tr: tr.det_index)
