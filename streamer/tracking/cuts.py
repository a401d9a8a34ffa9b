"""Hard shot cuts, found from frame-difference statistics of a tiny thumbnail.

Why: a tracker that only knows boxes and motion carries an id across a cut to whoever
stands where the last face stood (a movie clip ran one id through two cuts and three
people). A cut must end every track.

How, per frame: shrink the frame to a 64×36 thumbnail and compare it with the previous
one by two statistics:

- the change, the mean absolute pixel difference (0–1): large at a cut, but also when the
  camera pans or something moves fast near the lens;
- the distance between coarse colour histograms (0–1): a pan or a fast movement keeps
  the scene's colours, a cut usually changes them, though between two shots of one room
  only a little.

A cut needs the change above ``cut_min_change`` (0.08), and then either

- (a) the change jumps: above ``cut_ratio`` (4) times its typical value, and the colours
  change at least a little (histogram distance above ``cut_min_histogram``, 0.05); or
- (b) the colours jump: the histogram distance above ``cut_colour_histogram`` (0.10) and
  4 times its typical value, and the change ``cut_colour_change_ratio`` (2) times its
  own: a cut in the middle of a pan, where the change was large already.

A statistic's typical value is its median over the last ``cut_window`` (30) frames, or its
value at the last frame where that is larger: a pan or a fade that has just begun has not
moved the median yet, but after its first frame it changes each frame about as much as
the frame before. (The first frame of a motion from rest does jump, but keeps its colours:
a pan of 48 px a frame, histogram distance 0.017.) Gradual transitions (fades,
dissolves) are not hard cuts and are not reported: the tracker follows faces through them.

Validated by ``bench/cuts_real.py`` on real video (hand labels in ``bench/cut_labels.py``):

- edited video: all 7 hard cuts found at their first frame, in a VFR film trailer with
  dropped frames (2) and a TV documentary cutting between shots of one room (5): change
  at least 0.138, at least 24 times its typical value; histogram distance at least
  0.095 (the rule before this one asked 0.10 and missed that cut). None invented on a
  clip of fades to and from black (change at most 0.043 a frame);
- none invented in the 17 single-shot clips (4,542 frames of talking heads, a head
  turning, a walking crowd at 1080p: change at most 0.058, histogram distance at most
  0.079), nor in pans over a photo of up to 64 px a frame (tests/streamer/tracking/test_cuts.py);
  all 16 cuts found between the 17 clips joined end to end (20 frames each; change at a
  cut at least 0.189 and 6.9 times its typical value);
- fed only every 2nd frame (a sampled source, ``--every``) the same: all found, none
  invented. Every 5th: all found, 2 invented in the documentary, where a hand leaves
  and the camera shifts within one step (change 0.15, 7 times its typical value, as at
  the cut before it); the rule before this one invented 20 there, 18 on the fades;
- PySceneDetect's ContentDetector and AdaptiveDetector find the same at full rate at
  about twice the cost (AdaptiveDetector says so 2 frames late); ContentDetector
  invents none at every 5th frame either. Its Hash and Histogram detectors miss cuts,
  and the Histogram one takes every fade step for a cut.

Cost: median 0.22 ms a frame, mean 0.25 ms, over the 5,920 frames of the benchmark (the
rule before this one 0.25 / 0.27 ms in the same run; 2 cores), the thumbnail most of it:
the medians are only taken when the change passes its floor.
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
        if prev_thumb is None or prev_hist is None:
            return False
        cfg = self.cfg
        change = float(np.abs(thumb.astype(np.int16) - prev_thumb).mean()) / 255.0
        histogram = 0.5 * float(np.abs(hist - prev_hist).sum())
        self.last_change, self.last_histogram = change, histogram
        cut = False
        if change > cfg.cut_min_change:
            # typical: the recent median, or the last frame's if larger (a motion that has
            # just begun has not moved the median yet, and is no jump after its first frame)
            typical = np.maximum(np.median(self._recent, axis=0), self._recent[-1]) if self._recent else (0.0, 0.0)
            jump = change > cfg.cut_ratio * typical[0]
            cut = ((jump and histogram > cfg.cut_min_histogram)
                   or (histogram > cfg.cut_colour_histogram and histogram > cfg.cut_ratio * typical[1]
                       and change > cfg.cut_colour_change_ratio * typical[0]))
        if not cut:   # a cut says nothing about how much the new shot moves
            self._recent.append((change, histogram))
        return cut
