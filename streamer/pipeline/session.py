"""One stream, end to end: the ``StreamSession`` Ray actor.

    source ─frames→ detect (shared replica) → track → crop → regress (shared replica)
           → pose into image pixels → smooth per track → FaceRecords → sinks

The session is an async actor running three stages joined by bounded queues:

1. *read*: decode a batch of frames (in a thread), decide which of them the detector
   sees (a hard cut, the schedule, a presence request: :class:`~streamer.tracking.follow.Follower`),
   shrink those to the detector's input size (and cut a tile of a large frame:
   :mod:`streamer.tracking.tiles`) and send them to a detector replica; at
   most ``_DETECT_AHEAD`` batches are decoded ahead of tracking.
2. *track*: in frame order, track the detections of detected frames and follow the
   tracks through the others, cut the crops with the checkpoint's crop rule and send
   them to a regressor replica; at most ``cfg.session.max_inflight_batches`` crop
   batches are in flight.
   Where a track is new, or its identity was last sampled ``identity.every_s`` ago, an
   identity patch of the face goes to an identity replica with the same batch.
3. *publish*: in frame order, give the regressor's landmarks and presence back to the
   follower (where each face is for the frames still to be tracked: a few frames late,
   the tracker's motion model covers the gap), give the identity samples to the
   :class:`~streamer.persons.book.PersonBook` (each track's person, ``person`` events), turn
   predictions into FaceRecords (raw and smoothed) and write them to every sink.

A stage waits for a free slot before it starts on a batch (:class:`Pipe`), so a
slow stage makes every stage before it wait, down to the decoder: that is the
backpressure by which a file is processed completely, never dropping a frame, at the
speed of the slowest stage, while decoding, detection and regression of consecutive
batches overlap. Tracking and smoothing run strictly in frame order (they are stateful);
only the model calls are concurrent.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable, Iterator

import numpy as np
import ray

from streamer.config import Config
from streamer.data.events import EventKind, StreamEvent
from streamer.data.record import FaceRecord
from streamer.data.sinks.base import Committed, Sink, published_everywhere
from streamer.persons.book import PersonBook
from streamer.persons.gallery import PersonIds, RedisGallery
from streamer.pipeline.counters import LATENCY_BUCKETS_S, Histogram, RateMeter, Reservoir, StageLatency
from streamer.pipeline.person_stage import PersonStage
from streamer.pipeline.pipes import Detecting, FrameWork, Pipe, Regressing, Unseen
from streamer.pipeline.ray_errors import root_cause
from streamer.pipeline.records import RecordBuilder
from streamer.pipeline.replicas import ModelInfo, Replicas
from streamer.pipeline.smoothing import SmootherBank
from streamer.pipeline.status import RunCause, StreamProgress, StreamState, StreamSummary, sink_label
from streamer.pipeline.view_tap import ViewTap
from streamer.sources.files import open_source
from streamer.sources.frames import Frame, Source, SourceError
from streamer.sources.urls import SourceKind, Transport, check_source, redact
from streamer.tracking.follow import Follower, FramePlan
from streamer.tracking.schedule import DetectionPhase
from streamer.tracking.tiles import Region, TileRotation
from workers import face_model
from workers.crops import CropRule, crop_faces
from workers.identity import FaceIdentity, IdentityCropRule
from workers.prediction import Detections, Prediction

_DETECT_AHEAD = 2  # detector batches decoded (and detecting) ahead of tracking
# Frames a followed (not detected) frame may be ahead of the regressor's newest output it
# is placed from: the models keep working on this many while the next is tracked, and the
# Kalman motion model covers the gap. More, and a moving face slips out of its crop.
_FEEDBACK_LAG = 2

SinkFactory = Callable[[], Sink]


def detector_input(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The frame at the size the detector works at, and that size over the original.

    The detector shrinks frames to ``max_side`` anyway; shrinking them before they are
    sent moves that work to the session's decode thread and sends far fewer bytes
    through Ray (a 1080p frame is 6.2 MB, at 640 px 0.7 MB). Boxes found in the small
    frame are divided by the factor to return to source pixels.
    """
    whole = Region.whole(image.shape[1], image.shape[0], max_side)
    return whole.cut(image), whole.scale


@dataclass
class _Counters:
    frames: int = 0
    faces: int = 0
    track_ids: set = field(default_factory=set)
    person_ids: set = field(default_factory=set)
    started: float = 0.0       # run() called
    processing: float = 0.0    # models known, source open, sinks up: frames start to flow
    finished: float = 0.0
    lag_s: float | None = None  # live: capture to publish of the latest frame
    rate: RateMeter = field(default_factory=RateMeter)
    latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_S))
    recent_latency: Reservoir = field(default_factory=Reservoir)
    stages: StageLatency = field(default_factory=StageLatency)   # where that latency goes


class StreamSession:
    """Analyses one stream; create it with :func:`launch`, then ``await run()``.

    ``sinks`` are factories called inside the actor (a sink holds connections and open
    files, which do not travel between processes); every sink gets every record and
    the lifecycle events started, progress, ended and failed.
    """

    def __init__(self, stream_id: str, url: str, cfg: Config, replicas: Replicas,
                 sinks: list[SinkFactory], media_root: str | None = "/", transport: Transport = Transport.TCP,
                 redis_url: str | None = None, cause: RunCause = RunCause.SUBMITTED,
                 detection_slot: int | None = None):
        self.stream_id = stream_id
        self.detection_slot = detection_slot   # the service's spread of detector runs (tracking.schedule)
        self._cause = cause   # which event opens the run (see run)
        self.url = url
        self.cfg = cfg
        self.replicas = replicas
        self._media_root = media_root
        self._transport = transport
        self._sink_factories = sinks
        self._redis_url = redis_url   # the run's Redis: live-view frames, identity.gallery's persons
        self._sinks: list[Sink] = []
        self._source: Source | None = None
        self._state = StreamState.CREATED
        self._stop_requested = False
        self._resume: Committed | None = None   # set when a restarted session resumes
        self._count = _Counters()
        self._last_progress_event = 0.0
        self._dropped_seen = 0
        # one thread each, so decoding never waits for a slow sink and vice versa
        self._decode_pool = ThreadPoolExecutor(1, thread_name_prefix="decode")
        self._sink_pool = ThreadPoolExecutor(1, thread_name_prefix="sinks")
        self._view = ViewTap(cfg, stream_id, redis_url, self._sink_pool)   # frames for the live view, if watched

    async def progress(self) -> StreamProgress:
        """Counters so far; cheap, callable at any time while ``run`` is going."""
        return self._progress()

    def _progress(self) -> StreamProgress:
        """``fps`` is the average since frames started to flow (what a file's progress bar
        wants); ``processed_fps`` the rate over the last seconds (what a live stream's
        health is judged by) and ``source_fps`` the rate the source delivers at."""
        c, elapsed = self._count, self._elapsed()
        p50, p99 = c.recent_latency.percentiles(50, 99)
        source = self._source
        stats = source.stats if source else {}
        return StreamProgress(
            state=self._state, frames=c.frames, faces=c.faces, tracks=len(c.track_ids), persons=len(c.person_ids),
            seconds=elapsed, fps=c.frames / elapsed if elapsed > 0 else 0.0,
            processed_fps=c.rate.rate() if self._state == StreamState.RUNNING else 0.0,
            source_fps=source.fps if source else None,
            live=bool(source and source.is_live),
            lag_s=c.lag_s, latency_s=c.latency.snapshot(),
            latency_p50_s=p50, latency_p99_s=p99, latency_stages=c.stages.snapshot(),
            frame_count_estimate=source.frame_count_estimate if source else None,
            decode_errors=stats.get("decode_errors", 0),
            dropped_frames=stats.get("dropped", 0), reconnects=stats.get("reconnects", 0),
            last_error=stats.get("last_error"),
            node_id=ray.get_runtime_context().get_node_id(),
            published={sink_label(type(s).__name__): s.stats.published for s in self._sinks},
        )

    def _behind(self) -> bool:
        """Whether this live stream is falling behind its camera: frames pile up at the
        source (a quarter of its buffer), or it dropped some since the last model call.
        Told to the replicas, which then hold files back (``model.priority`` live_first)."""
        src = self._source
        if src is None or not src.is_live:
            return False
        dropped = src.stats.get("dropped", 0)
        grew, self._dropped_seen = dropped > self._dropped_seen, dropped
        return grew or src.backlog >= max(2, self.cfg.source.queue_frames // 4)

    def _live_url(self) -> bool:
        """Whether the URL names a live source, known before it is opened (a refused one
        counts as a file: opening it fails anyway)."""
        try:
            return check_source(self.url, self._media_root).kind != SourceKind.FILE
        except SourceError:
            return False

    def _is_live(self) -> bool:
        assert self._source is not None  # the stages start once the source is open
        return self._source.is_live

    async def stop(self) -> None:
        """Ask ``run`` to finish early: no new frames are read, what is in flight is
        published, the sinks are flushed and the last event is ``stopped``.

        A live source is closed at once (its reader may be waiting on the network); a
        file is left to the decode thread, which stops at the next batch.
        """
        self._stop_requested = True
        source = self._source
        if source is not None and source.is_live:
            source.close()

    def close(self) -> None:
        """Let the session's threads go once ``run`` has returned (a stream host runs
        many sessions in one process; an actor of its own simply ends)."""
        self._decode_pool.shutdown(wait=False)
        self._sink_pool.shutdown(wait=False)

    async def run(self) -> StreamSummary:
        """Process the whole stream; returns the summary, or raises after a ``failed`` event."""
        self._state = StreamState.CONNECTING
        self._count.started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            info: ModelInfo = await self.replicas.info()
            rule = CropRule.from_meta(info.meta)
            builder = RecordBuilder(self.stream_id, info.version, SmootherBank(self.cfg.smoothing),
                                    face_model.load().blendshapes_from_eta, self.cfg.emotion.for_reader(info.emotion),
                                    presence_threshold=info.presence_threshold)
            for make in self._sink_factories:  # one by one: a failure is told to those made
                self._sinks.append(make())
            resume = _resume_point(self._sinks, self._live_url())
            self._resume = resume
            after = {"after_frame": resume.frame_index if resume else None, "pts": resume.pts if resume else None}
            if self._cause == RunCause.RESTARTED:
                await self._emit(EventKind.RESTARTED, **after)
            elif self._cause == RunCause.SERVICE_RESTART:   # said even when nothing was held yet
                await self._emit(EventKind.RESUMED, **after, cause=self._cause.value)
            elif resume is not None:
                await self._emit(EventKind.RESUMED, **after)
            # Sinks first, so that a live source's reconnect attempts while it connects,
            # and a failure to connect at all, reach the events stream.
            src = await loop.run_in_executor(
                self._decode_pool, partial(open_source, self.url, self.cfg.source, media_root=self._media_root,
                                           on_event=self._source_event, transport=self._transport, wait=False))
            self._source = src
            if self._stop_requested:  # stop() came before there was a source to close
                src.close()
            elif src.is_live:  # connecting may take up to give_up_s; stop() closes it meanwhile
                try:
                    await loop.run_in_executor(self._decode_pool, src.wait_ready)
                except SourceError:
                    if not self._stop_requested:
                        raise
            # the Redis sink adds redis_codec.stream_info() (pose fields, blendshape names, emotion
            # classes in the order of emotion_probs), as Parquet has them in its metadata; how the
            # crops are read (replicas.Reading) is here as in Parquet's (streamer.pipeline.backend)
            await self._emit(EventKind.STARTED, url=redact(self.url), fps=src.fps, width=src.width, height=src.height,
                             frame_count_estimate=src.frame_count_estimate, model_version=info.version,
                             reading=info.reading_for(src.is_live))
            self._state = StreamState.RUNNING
            self._count.processing = time.monotonic()
            detected = Pipe[Detecting](_DETECT_AHEAD)
            regressing = Pipe[Regressing](self.cfg.session.max_inflight_batches)
            first_id = self._resume.max_track_id + 1 if self._resume is not None else 1
            # Following a face between detector runs is safe only with a presence probe to
            # notice a crop that lost it: a network shipped without one is detected every frame.
            threshold = info.presence_threshold
            every = self.cfg.detector.every_frames if threshold is not None else 1
            phase = DetectionPhase.for_stream(self.detection_slot, src.fps if src.is_live else None)
            follower = Follower(self.cfg.tracker, every, threshold, first_id=first_id, phase=phase,
                                regions=TileRotation(self.cfg.detector))
            book = (PersonBook(self.cfg.identity, FaceIdentity.distance, follower.tracker.new_id, self._person_ids())
                    if self.replicas.identities else None)
            unseen = Unseen()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read(self._frames(src), detected, follower))
                group.create_task(self._track(detected, regressing, rule, follower, unseen, book))
                group.create_task(self._publish(regressing, builder, follower, unseen, book))
            self._count.finished = time.monotonic()
            await self._in_sink_thread(lambda: [s.flush() for s in self._sinks])
            summary = self._summary()  # after the flush, so sink counts are final
            final = StreamState.STOPPED if self._stop_requested else StreamState.ENDED
            summary.state = final
            await self._emit(EventKind.STOPPED if self._stop_requested else EventKind.ENDED, **summary.event_fields())
            await self._close_sinks()
            self._state = final
            return summary
        except BaseException as e:
            self._count.finished = self._count.finished or time.monotonic()
            self._state = StreamState.FAILED
            await self._fail(root_cause(e))
            raise root_cause(e) from None
        finally:
            if self._source is not None:  # in the decode thread, after any decode in progress
                await loop.run_in_executor(self._decode_pool, self._source.close)

    # ---- stages ------------------------------------------------------------------------

    async def _read(self, frames: Iterator[Frame], out: Pipe[Detecting], follower: Follower) -> None:
        loop = asyncio.get_running_loop()
        # A live frame goes on alone: waiting for a detector batch to fill would add
        # batch/fps seconds of latency; the replicas batch across streams instead. So does
        # a file's when the detector does not see every frame: a presence request then
        # reaches the detector a frame later, not a batch, and a batch would hold one
        # detected frame or none.
        live = self._is_live()
        size = 1 if live or follower.schedule.every_frames > 1 else self.cfg.detector.batch_size
        # a file's duration limit is the source's to enforce (it knows pts); a live
        # stream's is this session's: it ends as a file would, after that long running
        limit = self.cfg.source.max_duration_s if self._is_live() else None
        while not self._stop_requested:
            if limit is not None and time.monotonic() - self._count.processing >= limit:
                break
            await out.reserve()
            batch = await loop.run_in_executor(self._decode_pool, _take, frames, size)
            if not batch:
                break
            read_at = time.time()
            plans, images = await loop.run_in_executor(self._decode_pool, _plan, batch, follower)
            detections = self.replicas.detect(images, live, self._behind()) if images else None
            out.put(Detecting(batch, plans, detections, read_at))
        out.close()

    def _frames(self, src) -> Iterator[Frame]:
        """The source's frames, or, for a resumed session, those after the resume point:
        a file skips what the sinks hold; a live stream, which cannot go back, carries on
        numbering (index and pts) after it, so ids and timestamps never repeat."""
        r = self._resume
        if r is None:
            return iter(src)
        if not src.is_live:
            return (f for f in src if f.index > r.frame_index)
        step = 1.0 / src.fps if src.fps else 0.0
        return (replace(f, index=f.index + r.frame_index + 1, pts=f.pts + r.pts + step) for f in src)

    async def _track(self, inp: Pipe[Detecting], out: Pipe[Regressing], rule: CropRule, follower: Follower,
                     unseen: Unseen, book: PersonBook | None) -> None:
        live, cfg = self._is_live(), self.cfg.detector
        work: list[FrameWork] = []
        crops: list[np.ndarray] = []
        patches: list[np.ndarray] = []
        identity_rule = IdentityCropRule()

        async def regress() -> None:   # the frames so far go to the regressor as one call
            all_crops = np.concatenate(crops)
            await out.reserve()
            prediction = self.replicas.predict(all_crops, live, self._behind()) if len(all_crops) else None
            identities = self.replicas.identify(np.concatenate(patches)) if patches else None
            out.put(Regressing(list(work), prediction, identities))
            unseen.sent(len(work))
            work.clear()
            crops.clear()
            patches.clear()

        while (item := await inp.get()) is not None:
            found: list[Detections] = await item.detections if item.detections is not None else []
            detections = iter(found)
            for frame, plan in zip(item.frames, item.plans):
                self._view.offer(frame)
                if plan.detect:
                    det = plan.regions.merge([next(detections) for _ in plan.regions.regions], cfg.nms_threshold,
                                             cfg.min_face_px)
                    tracks = follower.track(frame, plan.cut, det.boxes, det.scores, plan.regions)
                else:
                    if follower.tracker.following():   # placed from the regressor: not too late
                        if work:
                            await regress()
                        await unseen.at_most(_FEEDBACK_LAG)
                    tracks = follower.track(frame, plan.cut)
                boxes = np.array([t.box for t in tracks], np.float64).reshape(-1, 4)
                frame_crops, affines = crop_faces(frame.image, boxes, rule)
                crops.append(frame_crops)
                sampled = [k for k, t in enumerate(tracks)
                           if book is not None and book.wants_sample(t.track_id, frame.pts)]
                if sampled:
                    patches.append(identity_rule.cut(frame.image, boxes[sampled]))
                h, w = frame.image.shape[:2]
                whole = [bool(b[0] >= 0 and b[1] >= 0 and b[2] <= w and b[3] <= h) for b in boxes[sampled]]
                work.append(FrameWork(frame.index, frame.pts, frame.captured, tracks, affines,
                                      list(follower.tracker.ended_ids), plan.cut, sampled, whole,
                                      item.read_at, time.time()))
            inp.release()  # the frames' images are no longer needed
            await regress()
        out.close()

    async def _publish(self, inp: Pipe[Regressing], builder: RecordBuilder, follower: Follower,
                       unseen: Unseen, book: PersonBook | None) -> None:
        c = self._count
        persons = PersonStage(book, builder, self.cfg.identity, self._is_live()) if book is not None else None
        while (item := await inp.get()) is not None:
            work = item.work
            pred: Prediction | None = await item.prediction if item.prediction is not None else None
            answered = time.time()
            if persons is not None:
                await persons.batch(work, pred, item.identities)
            inp.release()
            _observe(follower, work, pred)
            unseen.seen(len(work))
            records: list[FaceRecord] = []
            row, written = 0, 0
            for frame in work:
                if frame.cut:  # the event goes between the old shot's records and the new one's
                    await self._write(records[written:])
                    written = len(records)
                    await self._emit(EventKind.CUT, frame_index=frame.index, pts=frame.pts,
                                     ended_tracks=len(frame.ended_ids))
                events = persons.frame(frame) if persons is not None else []
                if events:   # before the records that carry the new person ids
                    await self._write(records[written:])
                    written = len(records)
                    await self._emit_persons(events)
                records.extend(builder.frame(frame, pred, row, book))
                if persons is not None:
                    persons.ended(frame.ended_ids)
                row += len(frame.tracks)
            await self._write(records[written:])
            self._view.published([frame.index for frame in work], records)
            if persons is not None:
                await self._emit_persons(await persons.arrived(wait=False))
            c.frames += len(work)
            c.faces += len(records)
            c.rate.add(len(work))
            now = time.time()
            for frame in work:
                if frame.captured:
                    c.lag_s = now - frame.captured
                    c.latency.observe(c.lag_s)
                    c.recent_latency.observe(c.lag_s)
                    c.stages.observe(frame.captured, frame.read_at, frame.tracked_at, answered, now)
            c.track_ids.update(r.track_id for r in records)
            if book is not None:
                c.person_ids = book.person_ids()
            await self._maybe_progress_event()
        if persons is not None and book is not None:
            await self._emit_persons(await persons.arrived(wait=True))
            c.person_ids = book.person_ids()

    async def _emit_persons(self, events: list[StreamEvent]) -> None:
        for event in events:
            await self._emit(event.kind, **event.info)

    def _person_ids(self) -> PersonIds | None:
        """The deployment's gallery when ``identity.gallery`` is on and Redis is known."""
        if not (self.cfg.identity.gallery and self._redis_url):
            return None
        return RedisGallery(self.cfg.identity, self.cfg.redis, self._redis_url, self.stream_id)

    # ---- sinks and events ----------------------------------------------------------------

    async def _maybe_progress_event(self) -> None:
        now = time.monotonic()
        if now - self._last_progress_event >= self.cfg.session.progress_every_s:
            self._last_progress_event = now
            p = self._progress()
            await self._emit(EventKind.PROGRESS, frames=p.frames, faces=p.faces, fps=p.fps)

    async def _write(self, records: list[FaceRecord]) -> None:
        if records:
            await self._in_sink_thread(lambda: [s.write(records) for s in self._sinks])

    async def _emit(self, kind: EventKind, **info: Any) -> None:
        await self._in_sink_thread(lambda: [s.event(kind, **info) for s in self._sinks])

    def _source_event(self, kind: str, info: dict) -> None:
        """A live source's reconnect events, called from its reader thread: handed to
        the sink thread in order, without waiting for them (the reader must not stall)."""
        sinks, event = list(self._sinks), EventKind(kind)   # the sources name them by value
        if sinks:
            self._sink_pool.submit(lambda: [s.event(event, **info) for s in sinks])

    async def _close_sinks(self) -> None:
        sinks, self._sinks = self._sinks, []
        await self._in_sink_thread(lambda: [s.close() for s in sinks])

    async def _fail(self, error: BaseException) -> None:
        """Best effort: say why on every sink, keep what was written, close."""
        info = {"error": f"{type(error).__name__}: {error}", **self._summary().event_fields()}
        for sink in self._sinks:
            try:
                await self._in_sink_thread(partial(sink.event, EventKind.FAILED, **info))
            except Exception:
                pass  # a sink that cannot take the event cannot take anything else either
        for sink in self._sinks:
            try:
                await self._in_sink_thread(sink.close)
            except Exception:
                pass
        self._sinks = []

    async def _in_sink_thread(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._sink_pool, fn)

    # ---- accounting ----------------------------------------------------------------------

    def _elapsed(self) -> float:
        """Seconds spent processing frames (start-up excluded, so short clips compare)."""
        if not self._count.processing:
            return 0.0
        return (self._count.finished or time.monotonic()) - self._count.processing

    def _startup(self) -> float:
        c = self._count
        return (c.processing or c.finished or time.monotonic()) - c.started if c.started else 0.0

    def _summary(self) -> StreamSummary:
        c, seconds = self._count, self._elapsed()
        p50, p99 = c.recent_latency.percentiles(50, 99)
        stats = self._source.stats if self._source else {}
        sink_stats = {type(s).__name__: s.stats for s in self._sinks}
        return StreamSummary(
            stream_id=self.stream_id,
            state=self._state,
            frames=c.frames,
            faces=c.faces,
            tracks=len(c.track_ids),
            persons=len(c.person_ids),
            published=published_everywhere(sink_stats.values()),
            dropped_frames=stats.get("dropped", 0),
            reconnects=stats.get("reconnects", 0),
            decode_errors=stats.get("decode_errors", 0),
            seconds=seconds,
            startup_seconds=self._startup(),
            fps=c.frames / seconds if seconds > 0 else 0.0,
            resumed_after_frame=self._resume.frame_index if self._resume is not None else None,
            source_fps=self._source.fps if self._source is not None and self._source.fps else None,
            lag_s=c.lag_s, latency_p50_s=p50, latency_p99_s=p99,
            latency_s=c.latency.snapshot() if c.latency.count else None, latency_stages=c.stages.snapshot(),
            sinks={name: s.to_json() for name, s in sink_stats.items()},
        )


def _resume_point(sinks: list[Sink], live: bool = False) -> Committed | None:
    """Where a restarted session carries on, above every track id used.

    A file: after the last frame that every sink holds (a sink ahead of it skips or
    refuses what it has); None unless every sink holds something — a fresh stream, or a
    rerun whose outputs were cleared, starts from the beginning. A live stream cannot go
    back, so its new frames are numbered after the last frame that any sink holds: a sink
    behind (Parquet's buffer lost in a crash) keeps its gap, and none refuses a new frame
    as one it has (Redis would, for ids at or below its top entry)."""
    points = [s.committed() for s in sinks]
    held = [p for p in points if p is not None]
    if not held or (not live and len(held) < len(points)):
        return None
    pick = max if live else min
    first = pick(held, key=lambda p: p.frame_index)
    return Committed(first.frame_index, first.pts, max(p.max_track_id for p in held))


def _plan(batch: list[Frame], follower: Follower) -> tuple[list[FramePlan], list[np.ndarray]]:
    """Each frame's plan, and the detector's images of the detected frames (each shrunk
    whole, then any tile of it: streamer.tracking.tiles); the others are followed."""
    plans = [follower.plan(frame) for frame in batch]
    return plans, [image for f, plan in zip(batch, plans) for image in plan.regions.inputs(f.image)]


def _observe(follower: Follower, work: list[FrameWork], pred: Prediction | None) -> None:
    """The regressor's word on each face of these frames, back to the follower."""
    row = 0
    for frame in work:
        n = len(frame.tracks)
        if n:
            assert pred is not None  # the faces of a frame are regressed
            follower.observe(frame.index, [t.track_id for t in frame.tracks], pred.landmarks[row:row + n],
                             frame.affines, pred.presence[row:row + n])
        row += n


def _take(frames: Iterator[Frame], n: int) -> list[Frame]:
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == n:
            break
    return batch


def launch(stream_id: str, url: str, cfg: Config, replicas: Replicas,
           sinks: list[SinkFactory], **options: Any) -> Any:
    """Start a StreamSession actor (``options``: media_root, transport).

    It reserves no CPU: a session spends its time waiting on the replicas, which hold
    the CPUs, and the number of streams must not be capped by the replicas' reservation.
    """
    custom = {"resources": dict(cfg.session.resources)} if cfg.session.resources else {}
    # Restarted after a crash, Ray sends the pending run() again; it resumes (see run).
    actor = ray.remote(StreamSession).options(num_cpus=0, max_restarts=cfg.session.max_restarts,
                                              max_task_retries=cfg.session.max_restarts, **custom)
    return actor.remote(stream_id, url, cfg, replicas, sinks, **options)
