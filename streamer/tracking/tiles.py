"""Small faces in large frames: what parts of a frame the detector sees, and how large.

The detector sees a frame shrunk so that its longer side is ``detector.max_side`` (640): a
1080p frame at a third of its size, where it finds faces down to about 50 px of the source
and few below 40 (4K: twice those). Showing it the whole frame larger costs in proportion
to the pixels (1280: about 4×). Instead each detector run sees the whole frame at
``max_side`` as before and, in rotation, one *tile* of it at the scale a
``detector.tile_max_side`` detector would see (:class:`TileRotation`): over a round of
runs every part of the frame is seen at that resolution, for one tile's pixels a run.
The tiles overlap by the largest face the shrunk whole frame may miss, so each such face
lies whole inside some tile; a face cut by a tile's inner edge is left to the tile beside
it (the whole frame finds the larger ones).

Found once, a small face is a track, and between detector runs every track is placed from
the regressor's landmarks (:mod:`streamer.tracking.follow`). A detector run that could not
have found a face (not in this run's tile, too small for the whole frame:
:meth:`DetectionPlan.sees`) is no evidence that it went: its track is followed on, not
lost (:meth:`streamer.tracking.tracker.Tracker.update`), and the regressor's presence
probe still ends it when the face goes; its tile confirms it when it comes round.

Tiles apply only to frames much larger than ``max_side`` (``detector.tiles`` auto: the
longer side more than twice it, 1080p and up at 640), so a 720p camera costs nothing more.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.config import DetectorConfig, TileMode
from workers.boxes import iou_matrix
from workers.prediction import Detections

# The shorter side (detector pixels) from which RetinaFace finds a face reliably: a track
# at least this large where a run looked, and not matched, is taken as gone; below it a
# miss says little. On 11 frames of the 1080p crowd clip against the detector at full
# resolution, the 640 detector found every face from 20 px in its pixels, the 1280 one
# every face from 25 px and 86 % at 20–25 (docs/performance.md, "Small faces in large frames").
VISIBLE_PX = 24
# auto: tiles when the frame's longer side is more than this many times detector.max_side
AUTO_FACTOR = 2.0
_EDGE_PX = 2.0   # a box within this of a tile's inner edge (detector pixels) is cut by it


@dataclass(frozen=True)
class Region:
    """A rectangle of a frame (source pixels, x2 and y2 exclusive) and the size it is shown
    to the detector at. ``inner`` says which of its edges (left, top, right, bottom) lie
    inside the frame, where a face may be cut."""

    x1: int
    y1: int
    x2: int
    y2: int
    width: int    # what the detector is shown
    height: int
    inner: tuple[bool, bool, bool, bool] = (False, False, False, False)

    @classmethod
    def whole(cls, width: int, height: int, max_side: int) -> "Region":
        """The whole frame shrunk to fit ``max_side``, as the detector has always seen it."""
        if max(width, height) <= max_side:
            return cls(0, 0, width, height, width, height)
        s = max_side / max(width, height)
        return cls(0, 0, width, height, max(1, round(width * s)), max(1, round(height * s)))

    @property
    def scale(self) -> float:
        """Detector pixels per source pixel (the width's, after rounding)."""
        return self.width / (self.x2 - self.x1)

    def cut(self, image: np.ndarray) -> np.ndarray:
        """This region of ``image`` (RGB uint8) at the detector's size, contiguous."""
        part = image[self.y1:self.y2, self.x1:self.x2]
        if (self.width, self.height) == part.shape[1::-1]:
            return np.ascontiguousarray(part)
        return cv2.resize(part, (self.width, self.height), interpolation=cv2.INTER_AREA)

    def to_frame(self, det: Detections) -> Detections:
        """``det`` (found in :meth:`cut`'s image) in frame pixels, without the faces cut
        by an inner edge."""
        boxes, points = det.boxes, det.landmarks
        keep = np.ones(len(boxes), bool)
        w, h = self.width, self.height
        left, top, right, bottom = self.inner
        if left:
            keep &= boxes[:, 0] > _EDGE_PX
        if top:
            keep &= boxes[:, 1] > _EDGE_PX
        if right:
            keep &= boxes[:, 2] < w - _EDGE_PX
        if bottom:
            keep &= boxes[:, 3] < h - _EDGE_PX
        offset = np.array([self.x1, self.y1], np.float32)
        return Detections((boxes[keep] / self.scale + np.tile(offset, 2)).astype(np.float32),
                          det.scores[keep],
                          (points[keep] / self.scale + offset).astype(np.float32))

    def sees(self, boxes: np.ndarray) -> np.ndarray:
        """Per box (N, 4, frame pixels): whether it lies in this region and is large enough
        there for the detector to have found it."""
        inside = ((boxes[:, 0] >= self.x1) & (boxes[:, 1] >= self.y1)
                  & (boxes[:, 2] <= self.x2) & (boxes[:, 3] <= self.y2))
        if not any(self.inner):   # the whole frame: a face partly outside it is still seen
            inside = np.ones(len(boxes), bool)
        side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * self.scale
        return inside & (side >= VISIBLE_PX)


@dataclass(frozen=True)
class DetectionPlan:
    """What one detector run sees of a frame: the whole frame, then any tile. Each region
    is one image to the detector; :meth:`merge` puts their faces back together."""

    regions: tuple[Region, ...] = ()

    def __len__(self) -> int:
        return len(self.regions)

    @property
    def tiled(self) -> bool:
        return len(self.regions) > 1

    def inputs(self, image: np.ndarray) -> list[np.ndarray]:
        """The detector's images of ``image``, one per region."""
        return [r.cut(image) for r in self.regions]

    def merge(self, found: Sequence[Detections], nms_threshold: float, min_face_px: float = 0.0) -> Detections:
        """The faces of the frame, in its pixels, from the detector's answer for each region
        (in order); where regions overlap, the best-scored of overlapping boxes stays.
        Boxes whose shorter side is under ``min_face_px`` frame pixels are dropped here,
        where the scale is known: the detector saw the frame shrunk (a third of 1080p), and
        its own limit, in its pixels, would drop faces three times that size."""
        if len(found) != len(self.regions):
            raise ValueError(f"{len(found)} detections for {len(self.regions)} regions")
        if len(found) == 1:   # no tile: the whole frame's boxes, divided by its scale as always
            d, scale = found[0], self.regions[0].scale
            merged = Detections(d.boxes / scale, d.scores, d.landmarks / scale)
        else:
            parts = [r.to_frame(d) for r, d in zip(self.regions, found)]
            boxes = np.concatenate([p.boxes for p in parts]).reshape(-1, 4)
            scores = np.concatenate([p.scores for p in parts])
            points = np.concatenate([p.landmarks for p in parts]).reshape(-1, 5, 2)
            keep = _nms(boxes, scores, nms_threshold)
            merged = Detections(boxes[keep], scores[keep], points[keep])
        b = merged.boxes
        big = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) >= min_face_px
        if big.all():
            return merged
        return Detections(b[big], merged.scores[big], merged.landmarks[big])

    def sees(self, boxes: np.ndarray) -> np.ndarray:
        """Per box (N, 4, frame pixels): whether this run could have found it. Without a
        tile every box counts as seen: a miss loses the track, as it always has."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if not self.tiled:
            return np.ones(len(boxes), bool)
        return np.logical_or.reduce([r.sees(boxes) for r in self.regions])


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    if len(order) < 2:
        return order
    iou = iou_matrix(boxes[order], boxes[order])
    keep: list[int] = []
    dropped = np.zeros(len(order), bool)
    for i in range(len(order)):
        if dropped[i]:
            continue
        keep.append(i)
        dropped |= iou[i] > threshold
    return order[keep]


def tile_grid(width: int, height: int, cfg: DetectorConfig) -> list[Region]:
    """The tiles of a ``width`` × ``height`` frame for ``cfg``, in the order they are
    visited; none where tiles do not apply (``cfg.tiles``, or a frame small enough)."""
    longer = max(width, height)
    whole = Region.whole(width, height, cfg.max_side)
    scale = min(1.0, cfg.tile_max_side / longer)
    if (cfg.tiles == TileMode.OFF or scale <= whole.scale
            or (cfg.tiles == TileMode.AUTO and longer <= AUTO_FACTOR * cfg.max_side)):
        return []
    side = min(round(cfg.tile_side / scale), longer)
    # the largest face the whole frame may miss lies whole in some tile
    overlap = min(math.ceil(VISIBLE_PX / whole.scale), side // 2)

    def starts(extent: int) -> list[int]:
        if extent <= side:
            return [0]
        n = math.ceil((extent - side) / (side - overlap)) + 1
        return [round(i * (extent - side) / (n - 1)) for i in range(n)]

    tiles = []
    for y in starts(height):
        for x in starts(width):
            x2, y2 = min(x + side, width), min(y + side, height)
            tiles.append(Region(x, y, x2, y2, max(1, round((x2 - x) * scale)), max(1, round((y2 - y) * scale)),
                                (x > 0, y > 0, x2 < width, y2 < height)))
    return tiles


class TileRotation:
    """The strategy a stream's detector runs follow: the whole frame at ``max_side`` on
    every run, and the next tile of :func:`tile_grid` in turn where tiles apply. One per
    stream (it remembers whose turn it is); called from the thread that plans frames."""

    def __init__(self, cfg: DetectorConfig) -> None:
        self.cfg = cfg
        self._turn = 0
        self._grid: tuple[tuple[int, int], list[Region]] | None = None

    def tiles(self, width: int, height: int) -> list[Region]:
        if self._grid is None or self._grid[0] != (width, height):
            self._grid = ((width, height), tile_grid(width, height, self.cfg))
        return self._grid[1]

    def plan(self, width: int, height: int) -> DetectionPlan:
        """The regions of the next detector run on a ``width`` × ``height`` frame."""
        whole = Region.whole(width, height, self.cfg.max_side)
        tiles = self.tiles(width, height)
        if not tiles:
            return DetectionPlan((whole,))
        tile = tiles[self._turn % len(tiles)]
        self._turn += 1
        return DetectionPlan((whole, tile))
