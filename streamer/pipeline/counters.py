"""Counters that travel: fixed-bucket histograms, a recent-rate meter, recent percentiles
(of a frame's latency, and of each stage of it).

Sessions and replicas keep these and hand out plain dicts (``snapshot``) through Ray;
``/metrics`` renders the dicts as Prometheus text. Buckets are fixed so that snapshots
from many processes add up bucket by bucket, and memory never grows with traffic.
"""
from __future__ import annotations

import bisect
import math
import time
from collections import deque
from enum import StrEnum

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Histogram:
    """Prometheus-style histogram: counts per upper bound (``le``), plus sum and count."""

    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = tuple(sorted(buckets))
        self._counts = [0] * (len(self.buckets) + 1)   # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += float(value)
        self.count += 1

    def snapshot(self) -> dict:
        """{"buckets": [[le, cumulative count], ...], "sum", "count"}; le of +Inf is None."""
        cumulative, total = [], 0
        for le, n in zip((*self.buckets, None), self._counts):
            total += n
            cumulative.append([le, total])
        return {"buckets": cumulative, "sum": self.sum, "count": self.count}


class RateMeter:
    """Events per second over the last ``window_s`` seconds (e.g. frames processed)."""

    def __init__(self, window_s: float = 5.0):
        self.window_s = window_s
        self._marks: deque[tuple[float, int]] = deque()
        self._total = 0

    def add(self, n: int = 1, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._total += n
        self._marks.append((now, self._total))
        while now - self._marks[0][0] > self.window_s:
            self._marks.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        if len(self._marks) < 2 or now - self._marks[-1][0] > self.window_s:
            return 0.0
        (t0, n0), (t1, n1) = self._marks[0], self._marks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class Reservoir:
    """The last ``size`` observations, for exact recent percentiles (p50/p99 latency)."""

    def __init__(self, size: int = 2048):
        self._values: deque[float] = deque(maxlen=size)

    def observe(self, value: float) -> None:
        self._values.append(float(value))

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0-100, nearest rank) of what is held; None when empty."""
        return self.percentiles(q)[0]

    def percentiles(self, *qs: float) -> list[float | None]:
        """Several percentiles from one sort of what is held (None each when empty)."""
        if not self._values:
            return [None] * len(qs)
        ordered = sorted(self._values)
        return [ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))] for q in qs]


class Stage(StrEnum):
    """Where a frame's capture-to-publish time goes. The stages follow one another, so a
    frame's four times add up to its latency: which one grows says why a stream is late."""

    SOURCE = "source"     # captured → taken from the source: waiting in its buffer (the stream is behind)
    TRACK = "track"       # taken → tracked: the detector's answer, and the regressor's word on earlier frames
    MODEL = "model"       # tracked → the regressor's answer: its queue, the network, the round trip
    PUBLISH = "publish"   # the answer → records written to every sink


class StageLatency:
    """Recent p50 / p99 of each :class:`Stage`, over the last ``size`` frames."""

    def __init__(self, size: int = 2048):
        self._stages = {stage: Reservoir(size) for stage in Stage}

    def observe(self, captured: float, read: float, tracked: float, answered: float, published: float) -> None:
        """One frame's wall times at each stage's end (``captured`` its start)."""
        for stage, start, end in zip(Stage, (captured, read, tracked, answered), (read, tracked, answered, published)):
            self._stages[stage].observe(max(0.0, end - start))

    def snapshot(self) -> dict[str, dict[str, float | None]] | None:
        """``{stage: {"p50_s": ..., "p99_s": ...}}`` in stage order; None before any frame."""
        out = {}
        for stage, reservoir in self._stages.items():
            p50, p99 = reservoir.percentiles(50, 99)
            if p50 is None:
                return None
            out[str(stage)] = {"p50_s": p50, "p99_s": p99}
        return out
