"""Hard shot cuts, found from frame-difference statistics of a tiny thumbnail.

Why: a tracker that only knows boxes and motion carries an id across a cut to whoever
stands where the last face stood (a movie clip ran one id through two cuts and three
people). A cut must end every track.

How, per frame: shrink the frame to a 64×36 thumbnail and compare it with the previous
one by two statistics, each of which must pass a floor:

- the mean absolute pixel difference (0–1): large at a cut, but also when the camera
  pans or something moves fast near the lens;
- the distance between coarse colour histograms (0–1): a pan or a fast movement keeps
  the scene's colours, a cut usually changes them.

And at least one of them must jump: exceed ``cut_ratio`` times its median over the
recent frames. In a pan or in busy motion the recent differences are large too, so the
difference alone does not make a cut; a cut in the middle of a pan still changes the
colours far more than the pan did.

The defaults were set on the real clips under ``shared/data/real/video``: within a clip
(talking heads, a walking crowd) the thumbnail difference never passed 0.06 nor the
histogram distance 0.08; between the last frame of one clip and the first of another
(272 pairs, with a fully area-averaged thumbnail) the smallest were 0.13 and 0.13;
``bench/tracking_quality.py`` finds every cut between the clips joined end to end. Gradual transitions (fades,
dissolves) are not hard cuts and are not reported: the tracker follows faces through them.
"""
from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from streamer.config import TrackerConfig

THUMB_W, THUMB_H = 64, 36
_LEVELS = 4   # colour histogram: 4 levels per channel, 64 bins


def thumbnail(image: np.ndarray) -> np.ndarray:
    """(36, 64, 3) uint8: the whole frame (whatever its aspect), small.

    Area-averaging a whole 720p frame costs 2 ms; sampling a grid of pixels about twice
    the thumbnail's size first and averaging that costs 0.1 ms, and a statistic over
    2,304 pixels does not need the rest.
    """
    h, w = image.shape[:2]
    step = max(1, min(h // (2 * THUMB_H), w // (2 * THUMB_W)))
    grid = np.ascontiguousarray(image[step // 2::step, step // 2::step])
    return cv2.resize(grid, (THUMB_W, THUMB_H), interpolation=cv2.INTER_AREA)


def colour_histogram(thumb: np.ndarray) -> np.ndarray:
    """Normalised 64-bin joint colour histogram of a uint8 thumbnail."""
    q = thumb.astype(np.int32) * _LEVELS // 256
    bins = (q[..., 0] * _LEVELS + q[..., 1]) * _LEVELS + q[..., 2]
    h = np.bincount(bins.ravel(), minlength=_LEVELS**3).astype(np.float64)
    return h / h.sum()


class CutDetector:
    """Call :meth:`update` with every processed frame, in order; True at a hard cut.

    Causal (it sees only the past), so a cut is known when its first frame arrives and
    tracks end before that frame is tracked.
    """

    def __init__(self, cfg: TrackerConfig | None = None):
        self.cfg = cfg or TrackerConfig()
        self._thumb: np.ndarray | None = None
        self._hist: np.ndarray | None = None
        self._recent: deque[tuple[float, float]] = deque(maxlen=self.cfg.cut_window)
        self.last_change = 0.0      # the statistics of the latest frame, for benchmarks
        self.last_histogram = 0.0

    def update(self, image: np.ndarray) -> bool:
        thumb = thumbnail(image)
        hist = colour_histogram(thumb)
        prev_thumb, prev_hist = self._thumb, self._hist
        self._thumb, self._hist = thumb, hist
        if prev_thumb is None:
            return False
        cfg = self.cfg
        change = float(np.abs(thumb.astype(np.int16) - prev_thumb).mean()) / 255.0
        histogram = 0.5 * float(np.abs(hist - prev_hist).sum())
        self.last_change, self.last_histogram = change, histogram
        typical = np.median(self._recent, axis=0) if self._recent else np.zeros(2)
        cut = (change > cfg.cut_min_change and histogram > cfg.cut_min_histogram
               and (change > cfg.cut_ratio * typical[0] or histogram > cfg.cut_ratio * typical[1]))
        if not cut:   # a cut says nothing about how much the new shot moves
            self._recent.append((change, histogram))
        return cut
