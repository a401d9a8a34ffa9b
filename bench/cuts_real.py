"""Hard-cut detection on real edited video: facestream's CutDetector, the rule
it replaced, and PySceneDetect's detectors, frame by frame on the same decoded frames.

Material (nothing of it is in the repository):

- the edited clips under ``shared/data/real/video/cuts`` with the cuts labelled by hand in
  ``bench/cut_labels.py`` (a VFR film trailer with dropped frames, a TV documentary with
  cuts between shots of one room, a clip of fades to and from black: no cut);
- the single-shot clips under ``shared/data/real/video`` (talking heads, a walking crowd
  at 1080p): no cut, every cut found there is invented;
- those clips joined end to end as ``bench/tracking_quality.py`` joins them (the first
  ``--frames-per-clip`` frames of each at 1280x720): a hard cut where each clip begins.

Frames are numbered as ``streamer.sources.files`` numbers them (decode order). A found cut
matches a labelled one within ±1 frame (one to one); ``lag`` is how many frames later
than the cut's first frame a detector says so (facestream's rule is causal: 0).
PySceneDetect gets what its SceneManager would give it: BGR frames, shrunk to about
256 px wide (INTER_LINEAR), timecodes from each frame's pts (VFR-exact); the conversion
and the shrinking count in its cost. Cost: mean milliseconds per frame of ``update`` /
``process_frame`` in this run (mean and median), over every frame of every clip.

    .venv/bin/python bench/cuts_real.py [--every K] [--frames-per-clip 20] [--detectors ...]
"""
from __future__ import annotations

import argparse
import glob
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cut_labels import CUTS, FADES
from bench.machine import machine
from streamer.config import TrackerConfig
from streamer.tracking.cuts import CutDetector, colour_histogram, thumbnail

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "video"
CHUNK = 64   # frames decoded at a time (a whole 1080p clip would not fit in memory)


@dataclass
class Frame:
    index: int          # in the whole sequence fed to the detectors
    image: np.ndarray   # RGB
    pts: int
    time_base: object
    rate: float


class OldRule:
    """streamer/tracking/cuts.py as of commit 65b4873 (defaults 0.08 / 4.0 / 0.10 / 30): change and
    histogram distance both above their floors, and one of them above 4x its median."""

    def __init__(self) -> None:
        self._thumb: np.ndarray | None = None
        self._hist: np.ndarray | None = None
        self._recent: deque[tuple[float, float]] = deque(maxlen=30)

    def update(self, image: np.ndarray) -> bool:
        thumb = thumbnail(image)
        hist = colour_histogram(thumb)
        prev_thumb, prev_hist = self._thumb, self._hist
        self._thumb, self._hist = thumb, hist
        if prev_thumb is None or prev_hist is None:
            return False
        change = float(np.abs(thumb.astype(np.int16) - prev_thumb).mean()) / 255.0
        histogram = 0.5 * float(np.abs(hist - prev_hist).sum())
        typical = np.median(self._recent, axis=0) if self._recent else np.zeros(2)
        cut = (change > 0.08 and histogram > 0.10
               and (change > 4.0 * typical[0] or histogram > 4.0 * typical[1]))
        if not cut:
            self._recent.append((change, histogram))
        return cut


class Facestream:
    """A facestream rule: ``update(rgb) -> bool``, a cut at this very frame."""

    def __init__(self, make: Callable[[], object]):
        self.detector = make()

    def feed(self, f: Frame) -> list[int]:
        return [f.index] if self.detector.update(f.image) else []  # type: ignore[attr-defined]

    def finish(self) -> list[int]:
        return []


class SceneDetect:
    """A PySceneDetect detector fed as its SceneManager would feed it; its cuts come back
    as timecodes (possibly of earlier frames), mapped back to frame indices by pts."""

    def __init__(self, make: Callable[[], object]):
        self.detector = make()
        self._index: dict[int, int] = {}
        self._last: object = None

    def feed(self, f: Frame) -> list[int]:
        from scenedetect.common import FrameTimecode, Timecode  # type: ignore[import-untyped]

        h, w = f.image.shape[:2]
        bgr = cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR)
        if w > 256:
            factor = w / 256.0
            bgr = cv2.resize(bgr, (max(1, round(w / factor)), max(1, round(h / factor))),
                             interpolation=cv2.INTER_LINEAR)
        tc = FrameTimecode(Timecode(pts=f.pts, time_base=f.time_base), fps=f.rate)
        self._index[f.pts] = f.index
        self._last = tc
        return [self._index[c.pts] for c in self.detector.process_frame(tc, bgr)]  # type: ignore[attr-defined]

    def finish(self) -> list[int]:
        if self._last is None:
            return []
        return [self._index[c.pts] for c in self.detector.post_process(self._last)]  # type: ignore[attr-defined]


def detectors() -> dict[str, Callable[[], Facestream | SceneDetect]]:
    from scenedetect.detectors import AdaptiveDetector, ContentDetector, HashDetector, HistogramDetector  # type: ignore[import-untyped]

    return {
        "facestream-old": lambda: Facestream(OldRule),
        "facestream": lambda: Facestream(lambda: CutDetector(TrackerConfig())),
        "sd-content": lambda: SceneDetect(ContentDetector),
        "sd-adaptive": lambda: SceneDetect(AdaptiveDetector),
        "sd-hash": lambda: SceneDetect(HashDetector),
        "sd-histogram": lambda: SceneDetect(HistogramDetector),
    }


def decode(path: Path, every: int, limit: int | None = None, size: tuple[int, int] | None = None,
           first: int | None = None) -> Iterator[list[Frame]]:
    """Chunks of the clip's frames (every ``every``-th), numbered as streamer.sources.files numbers
    them. With ``first`` (a piece of a joined sequence), numbered from ``first`` and timed
    at 25 frames a second from there."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        chunk: list[Frame] = []
        for i, f in enumerate(c.decode(stream)):
            if limit is not None and i == limit:
                break
            if i % every:
                continue
            image: np.ndarray = f.to_ndarray(format="rgb24")
            if size:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            if first is None:
                chunk.append(Frame(i, image, f.pts if f.pts is not None else i, stream.time_base, rate))
            else:
                chunk.append(Frame(first + i, image, first + i, Fraction(1, 25), 25.0))
            if len(chunk) == CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


@dataclass
class Score:
    labelled: int = 0
    found: int = 0
    invented: int = 0
    lags: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)   # seconds, one a frame fed
    invented_in: dict[str, int] = field(default_factory=dict)   # clip -> cuts invented there


def run(make, chunks: Iterator[list[Frame]]) -> tuple[list[tuple[int, int]], list[float]]:
    """(cut frame, frame at which it was said) for every cut a detector reports, and the
    seconds it spent on each frame."""
    det = make()
    said: list[tuple[int, int]] = []
    times: list[float] = []
    for chunk in chunks:
        for f in chunk:
            t0 = time.perf_counter()
            out = det.feed(f)
            times.append(time.perf_counter() - t0)
            said += [(c, f.index) for c in out]
    said += [(c, -1) for c in det.finish()]
    return said, times


def score(said: list[tuple[int, int]], labels: tuple[int, ...], every: int, s: Score, clip: str) -> str:
    """Add one clip's result to ``s``; the clip's line."""
    # with every K-th frame fed, a cut at L is first seen at the next fed frame
    expected = [math.ceil(L / every) * every for L in labels]
    unmatched = sorted(c for c, _ in said)
    when = dict(said)
    hits, lags = [], []
    for e in expected:
        near = [c for c in unmatched if abs(c - e) <= every]
        if near:
            c = min(near, key=lambda c: abs(c - e))
            unmatched.remove(c)
            hits.append(c)
            lags.append(max(0, (when[c] - e) // every) if when[c] >= 0 else -1)
    s.labelled += len(expected)
    s.found += len(hits)
    s.invented += len(unmatched)
    s.lags += lags
    if unmatched:
        s.invented_in[clip] = len(unmatched)
    return (f"cuts {len(expected)}, found {len(hits)}, missed {len(expected) - len(hits)}, "
            f"invented {len(unmatched)} {unmatched if unmatched else ''}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--every", type=int, default=1, help="feed every K-th frame (a sampled source)")
    ap.add_argument("--frames-per-clip", type=int, default=20, help="of each clip joined end to end")
    ap.add_argument("--detectors", nargs="*", help="a subset of the detectors (default all)")
    ap.add_argument("--quiet", action="store_true", help="totals only, no line per clip")
    args = ap.parse_args()
    print(machine())
    every = args.every
    makers = detectors()
    names = args.detectors or list(makers)
    edited = [(name, REAL / "cuts" / name, labels) for name, labels in CUTS.items()]
    single = [(Path(p).name, Path(p), ()) for p in sorted(glob.glob(str(REAL / "*.mp4")))]
    groups = {"edited": Score(), "single-shot": Score(), "joined": Score()}
    results: dict[str, dict[str, Score]] = {n: {g: Score() for g in groups} for n in names}
    for name in names:
        print(f"{name}:")
        res = results[name]
        for group, clips in (("edited", edited), ("single-shot", single)):
            for clip, path, labels in clips:
                said, times = run(makers[name], decode(path, every))
                line = score(said, labels, every, res[group], clip)
                res[group].times += times
                if not args.quiet and (group == "edited" or said):
                    tag = " (fades)" if clip in FADES else ""
                    print(f"  {clip:22s}{tag:8s} {len(times):5d} frames: {line}")
        starts, first = [], 0
        chunks: list[Iterator[list[Frame]]] = []
        for _, path, _ in single:
            starts.append(first)
            chunks.append(decode(path, every, args.frames_per_clip, (1280, 720), first))
            first += args.frames_per_clip
        said, times = run(makers[name], (c for it in chunks for c in it))
        line = score(said, tuple(starts[1:]), every, res["joined"], "joined")
        res["joined"].times = times
        if not args.quiet:
            print(f"  {'joined':30s} {len(times):5d} frames: {line}")

    print()
    print(f"every {every} frame(s) fed; a found cut matches a label within ±{every} frame(s)")
    print(f"{'detector':16s} {'edited: found/cuts':>18s} {'missed':>6s} {'invented':>8s} {'fades inv.':>10s} "
          f"{'single-shot inv.':>16s} {'joined: found/cuts':>18s} {'inv.':>4s} {'lag':>4s} "
          f"{'ms mean':>7s} {'median':>6s}")
    for name in names:
        r = results[name]
        e, s, j = r["edited"], r["single-shot"], r["joined"]
        fades = sum(n for c, n in e.invented_in.items() if c in FADES)
        lag = max(e.lags + j.lags, default=0)
        ms = np.array(e.times + s.times + j.times) * 1e3
        print(f"{name:16s} {f'{e.found}/{e.labelled}':>18s} {e.labelled - e.found:6d} {e.invented:8d} "
              f"{fades:10d} {s.invented:16d} {f'{j.found}/{j.labelled}':>18s} "
              f"{j.invented:4d} {lag:4d} {ms.mean():7.3f} {np.median(ms):6.3f}")
    print(f"frames fed to each detector: {len(ms)} (edited {len(e.times)}, single-shot {len(s.times)}, "
          f"joined {len(j.times)}); lag: the most frames after a cut's first one that it was said")


if __name__ == "__main__":
    main()
