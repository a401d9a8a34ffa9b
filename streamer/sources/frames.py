"""What every video source gives and how it fails: the ground both kinds of source stand on.

A :class:`Source` (a :class:`~streamer.sources.files.FileSource` or a
:class:`~streamer.sources.live.LiveSource`) is an iterator of :class:`Frame`, counts what it
did in one :class:`SourceStats`, and raises a :class:`SourceError` subclass when it
cannot go on. The frame sampling rule (:class:`Sampler`) applies to both kinds alike.
Of the package it imports only :mod:`streamer.config` (the layer below sources, for the
:class:`~streamer.config.SourceConfig` the sampler reads its rule from) and no other
source module, so that the source modules, the URL policy and the network gateway all
build on it without importing one another in circles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Protocol, TypedDict

import numpy as np

from streamer.config import SourceConfig


class SourceError(Exception):
    """A video source could not be opened or read."""


class SourceNotFound(SourceError):
    """The path does not exist (or is not a regular file)."""


class NotAVideo(SourceError):
    """The file opens as no container, has no video stream, or decodes to no frame."""


class SourceUnreachable(SourceError):
    """A live source gave no frame for ``source.give_up_s``: nothing answered, or what
    answered never delivered video. Its own class (and exit status), because waiting and
    trying again later may help, where a file that is not a video never will."""


class SourceRejected(SourceUnreachable):
    """The server answered that it will not serve this stream (HTTP or RTSP 401, 403, 404,
    410: see :data:`FINAL_STATUSES`). The same answer would come back on every retry, so
    a live source fails with it at once instead of retrying until ``give_up_s``."""


# Answers a server gives again on every try: a wrong path or credentials, a stream gone.
# Anything else (connection refused, a timeout, 5xx) may pass, and is retried.
FINAL_STATUSES = frozenset({401, 403, 404, 410})


class SourceTooLarge(SourceError):
    """The source exceeds a configured limit: ``source.max_width`` / ``max_height``
    (declared or first decoded frame) or ``source.max_duration_s`` (declared duration)."""


@dataclass
class Frame:
    """One decoded frame.

    ``index`` counts every decoded frame from 0, so a sampled (or, live, dropped) frame
    keeps its true place in the stream; ``pts`` is the stream's timestamp in seconds
    (``index / fps`` when a file gives none; seconds since the first frame, across
    reconnects, for a live stream). ``captured`` is the wall-clock time (``time.time()``)
    the frame was decoded from a file, or its data arrived from a live stream: ``now -
    captured`` is how long the frame has been in the pipeline (a live frame's including
    the decoder's own delay).
    """

    index: int
    pts: float
    image: np.ndarray  # (H, W, 3) uint8 RGB
    captured: float = 0.0


class SourceStats(TypedDict, total=False):
    """A source's counters; each kind fills the keys that apply to it.

    Both: ``yielded``, ``skipped_by_sampling``, ``decode_errors``, ``last_error``.
    Files: ``decoded``, and ``beyond_max_duration`` when ``max_duration_s`` is set.
    Live: ``received``, ``dropped`` (``dropped_stale`` of them for age), ``reconnects``.
    """

    decoded: int
    received: int
    yielded: int
    skipped_by_sampling: int
    dropped: int
    dropped_stale: int
    decode_errors: int
    reconnects: int
    beyond_max_duration: int
    last_error: str | None


class Source(Protocol):
    """What a session (or any reader) may rely on, whatever the kind of source.

    ``width``/``height``/``fps`` are known once :meth:`wait_ready` returns;
    ``is_live`` says whether frames are dropped when the reader falls behind (live)
    or the reader is waited for (files). Iterate once; ``close`` from any thread.
    """

    fps: float
    width: int
    height: int
    frame_count_estimate: int | None
    stats: SourceStats

    @property
    def is_live(self) -> bool: ...

    @property
    def backlog(self) -> int: ...

    def wait_ready(self) -> None: ...

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class TimedFrame(Protocol):
    """What the sampler reads of a frame (a Frame, or a live source's frame not yet converted)."""

    @property
    def index(self) -> int: ...

    @property
    def pts(self) -> float: ...


class Sampler:
    """Decides which decoded frames to keep: every k-th, then at most ``fps`` per second.

    The rate rule keeps the first frame whose pts reaches each 1/fps slot (counted from
    the first frame), so the output never exceeds the source rate and follows the
    container's timestamps even when the source rate varies.
    """

    def __init__(self, cfg: SourceConfig) -> None:
        self.every = cfg.every
        self.fps = cfg.fps
        self._t0: float | None = None
        self._last_slot = -1

    def __call__(self, frame: TimedFrame) -> bool:
        if frame.index % self.every:
            return False
        if self.fps is None:
            return True
        if self._t0 is None:
            self._t0 = frame.pts
        # The small epsilon keeps frames whose pts sit exactly on a slot boundary
        # (e.g. 30 fps -> 10 fps) from being pushed into the previous slot by rounding.
        slot = math.floor((frame.pts - self._t0) * self.fps + 1e-6)
        if slot <= self._last_slot:
            return False
        self._last_slot = slot
        return True


def ffmpeg_reason(e: Exception) -> str:
    """FFmpeg's own words for an error, without PyAV's errno and filename decoration."""
    return getattr(e, "strerror", None) or str(e)
