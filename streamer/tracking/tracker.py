"""ByteTrack-style multi-face tracker (Zhang et al., ECCV 2022), in numpy.

Why ByteTrack: faces that turn, blur or are half occluded get low detector scores for a
few frames. Dropping those boxes breaks tracks and makes new ids; keeping them all makes
false tracks. ByteTrack keeps both: high-score boxes are matched first, then low-score
boxes may only *continue* tracks that were being followed, never start one.

Motion is a constant-velocity Kalman filter on (cx, cy, w, h), predicted over the real
gap between processed frames (``frame_index`` differences), so sampling every k-th frame
or dropping frames of a live stream only widens the prediction, it does not break it.
Ids are integers from 1, handed out when a track is confirmed, and never reused.

Beyond ByteTrack: each detection gets a small appearance embedding from the frame
(:mod:`streamer.tracking.appearance`), which keeps ids from swapping when faces cross and lets a
face lost for a while (within ``max_lost_frames``) take its id back wherever it
reappears, while a different face does not; and a hard shot cut (:mod:`streamer.tracking.cuts`,
told by the caller) ends every track. How tracks and detections are paired is injected
as distance functions (:mod:`streamer.tracking.association`).

Between detector runs (track-driven detection, :mod:`streamer.tracking.follow`) :meth:`Tracker.follow`
moves the followed tracks on with boxes placed from the regressor's landmarks. Those come
back a few frames late (the models run asynchronously): a box measured at frame f - k
updates the filter as of frame f - k (the filter kept its state at its newest
measurement) and the result is predicted on over the k frames, and each is used once; a
followed track the detector finds away from its box (taken back by appearance) learns
its velocity anew from that displacement (``_Kalman.relearn``). A track the detector
did not see at its last run is not followed (it is lost, and waits for the detector as
before), unless that run could not have seen it (a small face outside the run's tile,
:mod:`streamer.tracking.tiles`: ``sees`` of :meth:`Tracker.update`); one whose presence
fell must be confirmed by the next detector run or it ends (``confirm`` of
:meth:`Tracker.update`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from streamer.config import TrackerConfig
from streamer.tracking import association
from streamer.tracking.appearance import embed_faces
from streamer.tracking.association import Candidates, Distance

Embedder = Callable[[np.ndarray, np.ndarray], np.ndarray]   # (image, boxes (N, 4)) -> (N, D) unit rows

# Noise as fractions of the box size, per frame (DeepSORT's choice): a large face moves
# and jitters more pixels than a small one.
_STD_POS = 1.0 / 20.0
_STD_VEL = 1.0 / 160.0
# A new track's velocity is unknown: its spread, in box sides per frame. DeepSORT's 10 ×
# _STD_VEL (1/16) took a face walking 0.4 of its box a frame (crowd_1080p: 40 px a frame)
# for a 6-sigma outlier, so the filter learnt that speed over many measurements while the
# followed crop slid off the face; this wide prior lets the first two measurements set it.
_INIT_STD_VEL = 0.5


@dataclass
class Track:
    """One detection assigned to a confirmed track in this frame."""

    track_id: int
    box: np.ndarray     # (4,) x1, y1, x2, y2: the detection's box as measured, or the filter's
    score: float        # the detector's score (between detector runs: its last one)
    det_index: int      # row of the detection in the arrays given to update(); -1 from follow()
    source: str = "detector"   # "tracking": placed by follow() between detector runs


def _to_box(xywh: np.ndarray) -> np.ndarray:
    cx, cy = xywh[:2]
    w, h = np.maximum(xywh[2:4], 0.0)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _close(a: np.ndarray, b: np.ndarray, band: float) -> bool:
    """Whether box ``a`` is within ``band`` of box ``b``: centres less than band × b's
    longer side apart, each side within a factor exp(band)."""
    (ax, ay, aw, ah), (bx, by, bw, bh) = _to_xywh(a), _to_xywh(b)
    return bool(np.hypot(ax - bx, ay - by) <= band * max(bw, bh, 1.0)
                and abs(np.log(max(aw, 1.0) / max(bw, 1.0))) <= band
                and abs(np.log(max(ah, 1.0) / max(bh, 1.0))) <= band)


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
        std = np.concatenate([2 * _STD_POS * s, _INIT_STD_VEL * s])
        self.P = np.diag(std**2)
        # the state as of the newest measurement, and the frames predicted since then:
        # a late measurement is applied there (see update)
        self._measured = (self.x.copy(), self.P.copy())
        self._since = 0

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
        self._since += dt

    def advanced(self, box: np.ndarray, ahead: int) -> np.ndarray:
        """``box``, seen ``ahead`` frames ago, moved on by the current velocity."""
        return _to_box(_to_xywh(box) + ahead * self.x[4:])

    def update(self, box: np.ndarray, ahead: int = 0) -> None:
        """Measure ``box``, seen ``ahead`` frames ago.

        A late box is applied where it was seen: the filter goes back to its state at its
        newest measurement, is predicted to the frame of ``box``, measures it there, and is
        predicted on by ``ahead`` frames. So the displacement between two measurements,
        over the frames really between them, is what the velocity learns from. (Before,
        the box was moved on by the velocity the filter had and measured as if seen now:
        with a velocity still near zero, a face's displacement barely reached it, and a
        face walking 40 px a frame slipped out of its crop between detector runs.)
        ``ahead`` beyond the frames since the newest measurement (a box older than what
        the filter has) is measured now, moved on by the velocity, as before."""
        if 0 < ahead <= self._since:
            x, P = self._measured
            self._measure_after(x.copy(), P.copy(), self._since - ahead, _to_xywh(box))
            self.predict(ahead)
        else:
            self._measure(_to_xywh(box) + ahead * self.x[4:])

    def relearn(self, box: np.ndarray) -> None:
        """Measure ``box`` with the velocity learnt anew from the newest measurement.

        A followed face the detector finds away from where the filter put it (no box
        overlap: :class:`Tracker` took it back by appearance) moved faster than the
        filter knew, so its crops slid off the face and said nothing since. Reset to a
        still box there, as before, the track would be followed standing still again and
        lost again by the next run; instead the filter goes back to its newest
        measurement, forgets its velocity (the wide prior of a new track) and measures
        ``box`` over the frames really between them: the displacement sets the velocity."""
        x, P = self._measured[0].copy(), self._measured[1].copy()
        P[4:, :] = P[:, 4:] = 0.0
        P[4:, 4:] = np.diag((_INIT_STD_VEL * self._size()) ** 2)
        x[4:] = 0.0
        self._measure_after(x, P, self._since, _to_xywh(box))

    def _measure_after(self, x: np.ndarray, P: np.ndarray, frames: int, z: np.ndarray) -> None:
        """From state (``x``, ``P``), predict ``frames`` on and measure ``z`` there."""
        self.x, self.P, self._since = x, P, 0
        if frames:
            self.predict(frames)
        self._measure(z)

    def _measure(self, z: np.ndarray) -> None:
        R = np.diag((_STD_POS * self._size()) ** 2)
        S = self.P[:4, :4] + R
        K = np.linalg.solve(S, self.P[:4, :]).T     # P Hᵀ S⁻¹ with H = [I 0]
        self.x = self.x + K @ (z - self.x[:4])
        self.P = self.P - K @ self.P[:4, :]
        self._measured = (self.x.copy(), self.P.copy())
        self._since = 0

    def hold_size(self) -> None:
        """Stop size drift while the face is unseen (ByteTrack zeroes it likewise)."""
        self.x[6:8] = 0.0
        self._measured[0][6:8] = 0.0

    def box(self) -> np.ndarray:
        return _to_box(self.x[:4])


class _Tracklet:
    def __init__(self, box: np.ndarray, frame_index: int, embedding: np.ndarray | None, score: float):
        self.kf = _Kalman(box)
        self.hits = 1
        self.last_seen = frame_index
        self.measured = frame_index        # frame of the newest measurement the filter has
        self.score = score                 # the detector's, at its last match
        self.track_id: int | None = None   # set on confirmation
        self.lost = False
        self.embedding = embedding         # running mean of its confident boxes' embeddings

    def remember(self, embedding: np.ndarray, momentum: float) -> None:
        e = embedding if self.embedding is None else momentum * self.embedding + (1 - momentum) * embedding
        n = np.linalg.norm(e)
        self.embedding = e / n if n > 1e-9 else e


def _unseen(unmatched: list[_Tracklet], sees: Callable[[np.ndarray], np.ndarray] | None) -> list[_Tracklet]:
    """The followed tracks among ``unmatched`` that the detector run could not have found."""
    followed = [t for t in unmatched if not t.lost and t.track_id is not None]
    if sees is None or not followed:
        return []
    seen = sees(np.stack([t.kf.box() for t in followed]))
    return [t for t, s in zip(followed, seen) if not s]


def _candidates(tracks: list[_Tracklet]) -> Candidates:
    """The tracks' predicted boxes, with embeddings only if every track has one."""
    boxes = np.stack([t.kf.box() for t in tracks]) if tracks else np.zeros((0, 4))
    embeddings = [t.embedding for t in tracks if t.embedding is not None]
    has = bool(tracks) and len(embeddings) == len(tracks)
    return Candidates(boxes, np.stack(embeddings) if has else None)


def _match(tracks: list[_Tracklet], dets: Candidates, rows: list[int],
           distance: Distance) -> tuple[list[tuple[_Tracklet, int]], list[_Tracklet], list[int]]:
    """Assign ``tracks`` to the detections ``rows`` of ``dets`` by ``distance``.

    Returns (pairs of (track, det index), unmatched tracks, unmatched det indices).
    """
    if not tracks or not rows:
        return [], list(tracks), list(rows)
    pairs = association.assign(distance(_candidates(tracks), dets.take(rows)))
    used_t = {r for r, _ in pairs}
    used_d = {c for _, c in pairs}
    return ([(tracks[r], rows[c]) for r, c in pairs],
            [t for i, t in enumerate(tracks) if i not in used_t],
            [d for j, d in enumerate(rows) if j not in used_d])


class Tracker:
    """Tracks the faces of one stream; call :meth:`update` once per processed frame.

    ``frame_index`` must increase from call to call; gaps are allowed and
    ``cfg.max_lost_frames`` counts source frames, not calls, so a track survives the same
    time whatever the sampling. After each update, :attr:`ended_ids` lists the ids of
    tracks that the update removed (so the caller can drop per-track state).

    ``distance`` pairs tracks with detections (default: IoU with the predicted box plus
    appearance), ``reacquire`` pairs lost tracks with the boxes left over (default:
    appearance alone) and ``embed`` makes the embeddings; see :mod:`streamer.tracking.association`.
    """

    def __init__(self, cfg: TrackerConfig | None = None, first_id: int = 1, *,
                 distance: Distance | None = None, reacquire: Distance | None = None,
                 embed: Embedder = embed_faces):
        self.cfg = cfg or TrackerConfig()
        self._distance = distance or association.motion_appearance(self.cfg)
        self._reacquire = reacquire or association.reacquire(self.cfg)
        self._embed = embed
        self._tracks: list[_Tracklet] = []
        self._next_id = first_id   # a resumed stream continues above the ids it used
        self._frame: int | None = None
        self.ended_ids: list[int] = []

    def ids(self) -> set[int]:
        """Ids of the tracks alive now (followed or lost)."""
        return {t.track_id for t in self._tracks if t.track_id is not None}

    def new_id(self) -> int:
        """A fresh track id, never handed out before (for a track split by its identity)."""
        self._next_id += 1
        return self._next_id - 1

    def following(self) -> bool:
        """Whether :meth:`follow` would move a track on (one is confirmed and not lost)."""
        return any(t.track_id is not None and not t.lost for t in self._tracks)

    def _advance(self, frame_index: int) -> None:
        if self._frame is not None and frame_index <= self._frame:
            raise ValueError(f"frame_index {frame_index} does not follow {self._frame}")
        if self._frame is not None:
            for t in self._tracks:
                t.kf.predict(frame_index - self._frame)
        self._frame = frame_index

    def follow(self, frame_index: int, seen: dict[int, tuple[int, np.ndarray]]) -> list[Track]:
        """A frame without detections: every track followed up to now moves on, measured
        by ``seen[track_id]`` = (frame index, box) where that is newer than what its filter
        has (the regressor's late word, see the module doc), predicted otherwise.
        Tracks are reported with their filtered boxes, ``source`` "tracking"."""
        self._advance(frame_index)
        ended = [t.track_id for t in self._tracks
                 if t.track_id is not None and frame_index - t.last_seen > self.cfg.max_lost_frames]
        self._tracks = [t for t in self._tracks if t.track_id is None or t.track_id not in ended]
        out = []
        for t in self._tracks:
            if t.track_id is None or t.lost:
                continue
            measured = seen.get(t.track_id)
            if measured is not None and measured[0] > t.measured:
                box, ahead = np.asarray(measured[1], np.float64), frame_index - measured[0]
                if _close(t.kf.advanced(box, ahead), t.kf.box(), self.cfg.follow_deadband):
                    # where the filter has it already, within the regressor's own wobble:
                    # measure the filter's own box of that frame (no innovation), so a
                    # still face keeps a still crop instead of walking with its landmarks
                    # from crop to crop
                    box = t.kf.advanced(t.kf.box(), -ahead)
                t.kf.update(box, ahead=ahead)
                t.measured = measured[0]
            t.last_seen = frame_index
            out.append(Track(t.track_id, t.kf.box(), t.score, -1, "tracking"))
        self.ended_ids = ended
        return out

    def update(self, boxes: ArrayLike, scores: ArrayLike, frame_index: int, image: np.ndarray | None = None,
               cut: bool = False, confirm: frozenset[int] = frozenset(),
               sees: Callable[[np.ndarray], np.ndarray] | None = None) -> list[Track]:
        """Track one frame's detections. ``image`` (the frame, RGB, in the boxes' pixels)
        gives the appearance cue; without it matching is by motion alone. ``cut``: the
        frame starts a new shot, so every track ends and these boxes start new ones.
        ``confirm``: ids of tracks that end unless a box here continues them. ``sees``:
        which of (N, 4) boxes this detector run could have found (it saw only part of the
        frame at a resolution that finds them, :mod:`streamer.tracking.tiles`); a followed
        track it could not have found is not lost for being missed: it is reported as
        followed (``source`` "tracking", its filter's box) and goes on being followed."""
        cfg = self.cfg
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(boxes) != len(scores):
            raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
        ended = []
        if cut:
            ended = [t.track_id for t in self._tracks if t.track_id is not None]
            self._tracks = []
        self._advance(frame_index)
        embeddings = (self._embed(image, boxes).astype(np.float64)
                      if image is not None and cfg.appearance and len(boxes) else None)
        dets = Candidates(boxes, embeddings)

        high = np.flatnonzero(scores >= cfg.high_score).tolist()
        low = np.flatnonzero((scores >= cfg.low_score) & (scores < cfg.high_score)).tolist()
        # A track unseen for longer than the budget ends before matching, so that after
        # a long gap between processed frames it cannot take a box.
        confirmed = [t for t in self._tracks if t.track_id is not None]
        ended += [t.track_id for t in confirmed
                  if t.track_id is not None and frame_index - t.last_seen > cfg.max_lost_frames]
        confirmed = [t for t in confirmed if frame_index - t.last_seen <= cfg.max_lost_frames]
        tentative = [t for t in self._tracks if t.track_id is None]

        # 1: high-score boxes against every confirmed track, followed or lost.
        pairs, rest, high_left = _match(confirmed, dets, high, self._distance)
        # 2: low-score boxes may only continue tracks followed up to the previous frame.
        followed = [t for t in rest if not t.lost]
        pairs2, _, _ = _match(followed, dets, low, self._distance)
        # 3: tracks still unmatched may take back a high-score box that looks like them.
        matched2 = {id(t) for t, _ in pairs2}
        unmatched = [t for t in rest if id(t) not in matched2]
        back, unmatched, high_left = _match(unmatched, dets, high_left, self._reacquire)
        # 4: remaining high-score boxes against tracks not yet confirmed.
        pairs3, _, high_left = _match(tentative, dets, high_left, self._distance)

        for t, d in pairs + pairs2 + pairs3:
            t.kf.update(boxes[d])
        for t, d in back:
            if t.lost:   # it is elsewhere: its motion so far says nothing of where next
                t.kf = _Kalman(boxes[d])
            else:        # followed until now, but faster than its filter knew
                t.kf.relearn(boxes[d])
        for t, d in pairs + pairs2 + back + pairs3:
            t.hits += 1
            t.last_seen = t.measured = frame_index
            t.score = float(scores[d])
            t.lost = False
            if embeddings is not None and scores[d] >= cfg.high_score:
                t.remember(embeddings[d], cfg.appearance_momentum)
        doubted = [t for t in unmatched if t.track_id in confirm]
        ended += [t.track_id for t in doubted if t.track_id is not None]   # all: confirm names ids
        confirmed = [t for t in confirmed if t not in doubted]
        unseen = _unseen([t for t in unmatched if t not in doubted], sees)
        for t in unmatched:
            if t in unseen:
                t.last_seen = frame_index
            else:
                t.lost = True
                t.kf.hold_size()

        born = [(_Tracklet(boxes[d], frame_index, None if embeddings is None else embeddings[d],
                           float(scores[d])), d)
                for d in high_left if scores[d] >= cfg.new_track_score]
        assigned = pairs + pairs2 + back + pairs3 + born
        for t, _ in assigned:
            if t.track_id is None and t.hits >= cfg.min_hits:
                t.track_id = self._next_id
                self._next_id += 1

        # Unmatched tentative tracks die at once: a face must be seen in consecutive
        # processed frames to be confirmed.
        self.ended_ids = ended
        self._tracks = confirmed + [t for t, _ in pairs3 + born]

        out = [Track(t.track_id, boxes[d].copy(), float(scores[d]), d)
               for t, d in assigned if t.track_id is not None]
        out += [Track(t.track_id, t.kf.box(), t.score, -1, "tracking") for t in unseen
                if t.track_id is not None]
        return sorted(out, key=lambda tr: tr.det_index)
