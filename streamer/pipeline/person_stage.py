"""The session's publish stage, its part in persons: identity samples to the person book.

A file's samples are waited for and applied in their own frame, before that frame's
records, so every record carries its final person and a run gives the same ids every time.
A live stream never waits for them (an embedding costs ~80 ms of CPU, and the records of a
camera must not queue behind it): they are applied as they come back, after the records
of the frames in between, which carry a new track's own person id until then; a
``person`` event says when a track's person changes (``reason`` linked or split).
"""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable

import numpy as np

from streamer.config import IdentityConfig
from streamer.data.events import EventKind, StreamEvent
from streamer.persons.book import PersonBook, PersonReason
from streamer.pipeline.pipes import FrameWork, Sample
from streamer.pipeline.records import RecordBuilder
from workers.prediction import Prediction


class PersonStage:
    """Per stream: :meth:`batch` for each batch of frames the regressor answered, then
    :meth:`frame` for each of its frames in order, then :meth:`arrived`."""

    def __init__(self, book: PersonBook, builder: RecordBuilder, cfg: IdentityConfig, live: bool) -> None:
        self._book = book
        self._builder = builder
        self._cfg = cfg
        self._live = live
        self._pending: deque[tuple[list[Sample], asyncio.Future[np.ndarray]]] = deque()   # live: not applied yet
        self._now: list[tuple[Sample, np.ndarray]] = []   # a file's samples of the current batch
        self._queued = self._applied = 0                  # live batches of samples so far
        self._ending: deque[tuple[int, list[int]]] = deque()   # (batches queued then, tracks ended)

    async def batch(self, work: list[FrameWork], pred: Prediction | None,
                    identities: Awaitable[np.ndarray] | None) -> None:
        """The batch's samples (``identities``: their embeddings once back, or None)."""
        self._now = []
        if identities is None:
            return
        samples = self._samples(work, pred)
        if samples and self._live:
            self._pending.append((samples, asyncio.ensure_future(identities)))
            self._queued += 1
        elif samples:
            self._now = list(zip(samples, await identities))

    def frame(self, frame: FrameWork) -> list[StreamEvent]:
        """A frame's tracks are on screen; a file's samples of it applied. Person events."""
        self._book.seen(frame.index, [t.track_id for t in frame.tracks])
        return self._apply([(s, e) for s, e in self._now if s.frame_index == frame.index])

    def ended(self, track_ids: list[int]) -> None:
        """The tracker ended these tracks; the book forgets them once the samples queued
        before that are applied (a live track may end before its first sample is back)."""
        if track_ids:
            self._ending.append((self._queued, list(track_ids)))
            self._forget()

    async def arrived(self, wait: bool) -> list[StreamEvent]:
        """A live stream's samples whose embeddings are back, in order (``wait``: all of them)."""
        events: list[StreamEvent] = []
        while self._pending and (wait or self._pending[0][1].done()):
            samples, embeddings = self._pending.popleft()
            events.extend(self._apply(list(zip(samples, await embeddings))))
            self._applied += 1
            self._forget()
        return events

    def _forget(self) -> None:
        while self._ending and self._ending[0][0] <= self._applied:
            for track_id in self._ending.popleft()[1]:
                self._book.end(track_id)

    def _samples(self, work: list[FrameWork], pred: Prediction | None) -> list[Sample]:
        """The identity samples cut from these frames, in the order of their embeddings. A
        sample counts for linking and splitting only where the face is whole in the frame,
        large and frontal enough (``identity.min_face_px``, ``max_yaw``: the regressor's yaw)."""
        out, row = [], 0
        for frame in work:
            for k, whole in zip(frame.sampled, frame.whole):
                assert pred is not None   # sampled faces were regressed
                box = frame.tracks[k].box
                side = float(min(box[2] - box[0], box[3] - box[1]))
                yaw = abs(float(pred.euler[row + k, 0]))
                usable = whole and side >= self._cfg.min_face_px and yaw <= self._cfg.max_yaw
                out.append(Sample(frame.index, frame.pts, frame.tracks[k].track_id, usable))
            row += len(frame.tracks)
        return out

    def _apply(self, samples: list[tuple[Sample, np.ndarray]]) -> list[StreamEvent]:
        """Samples to the book; the person events they cause. A split track's smoothing
        starts again."""
        events = []
        for sample, embedding in samples:
            for event in self._book.observe(sample.frame_index, sample.track_id, embedding, sample.usable):
                if event.reason is PersonReason.SPLIT:
                    self._builder.restart(sample.track_id)
                events.append(StreamEvent(EventKind.PERSON, {"pts": sample.pts, **event.fields()}))
        return events
