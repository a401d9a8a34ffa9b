"""Live sources: RTSP cameras and HTTP streams, read on their own clock.

A live source cannot wait for its consumer: the camera keeps sending whether or not the
pipeline keeps up. So a reader thread decodes as fast as frames arrive into a small
buffer, and when the consumer is behind the *oldest* frames go (the freshest picture is
what a live consumer wants); a frame that has aged past ``staleness_s`` by the time the
consumer takes it goes too. Everything dropped is counted. Frames wait in the buffer as
decoded (YUV); only a frame handed to the consumer is converted to RGB, in the
consumer's thread, so a frame that is dropped costs no conversion (a 720p frame's is
about as much as its decoding) and the reader keeps up with the camera.

Live sources also come and go. When the connection ends, fails or falls silent the
reader reconnects with exponential backoff and jitter (``reconnect_s`` doubling up to
``reconnect_max_s``), reporting each attempt through ``on_event`` and counting it in
``stats["reconnects"]``; only after ``give_up_s`` without a frame does the iterator raise
:class:`~streamer.sources.frames.SourceUnreachable`. A server's answer that every retry
would get again (RTSP or HTTP 401, 403, 404, 410 for the stream itself) fails the source
at once with :class:`~streamer.sources.frames.SourceRejected` ("rtsp://cam/x answered
404 Not Found"): a wrong path or wrong credentials should not look like a network blip. A stream
whose frames are larger than ``max_width`` x ``max_height`` fails at once, without
retrying (:class:`~streamer.sources.frames.SourceTooLarge`); a later frame above the limit is
counted as a decode error and dropped. (``max_duration_s`` is the session's to enforce.) Across
reconnects ``Frame.index`` keeps counting and ``Frame.pts`` keeps increasing, so the
tracker and the smoother downstream see one stream.

Every connection goes through a :class:`~streamer.sources.gateway.Gateway`: on each attempt
(the first and every reconnect) the host is resolved once, every address is checked
against the network policy (``source.allow_networks`` and friends, see
:mod:`streamer.sources.netpolicy`) and the connection is made to a checked address; redirects,
HLS playlists and segments pass the same way. A refusal fails the source at once, without
retrying (:class:`~streamer.sources.netpolicy.NetworkRefused`, or another
:class:`~streamer.sources.urls.SourceRefused`): the same answer would come back.

Credentials in the URL are used to connect and never appear in a message, an event or
``stats``: everything is named by the spec's redacted ``label``.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import Callable, Iterator

import av

from streamer.config import SourceConfig
from streamer.sources.frames import (
    Frame,
    Sampler,
    SourceError,
    SourceRejected,
    SourceStats,
    SourceTooLarge,
    SourceUnreachable,
    ffmpeg_reason,
)
from streamer.sources.gateway import Gateway, Route
from streamer.sources.http import http_route
from streamer.sources.netpolicy import NetworkPolicy, Resolver, system_resolver
from streamer.sources.rtsp import rtsp_route
from streamer.sources.urls import SourceKind, SourceRefused, SourceSpec, Transport

log = logging.getLogger(__name__)

# How long a read may wait for data before the connection counts as dead. RTSP cameras
# send every frame interval, so 2 s of silence is a dead link; an HTTP source may be HLS,
# whose demuxer legitimately waits a whole segment (typically 2-10 s) for the playlist.
_READ_TIMEOUT_S = {SourceKind.RTSP: 2.0, SourceKind.HTTP: 12.0}
_JITTER = 0.2  # each delay is drawn from [(1 - _JITTER) * d, d]
# FFmpeg probes 5 s of a stream by default before the first frame comes out; the codec
# parameters arrive with the first keyframe (or the SDP), so half a second is plenty.
_ANALYZE_US = "500000"

EventCallback = Callable[[str, dict], None]


@dataclass
class _Decoded:
    """A frame as it waits in the buffer: numbered and timed, not yet converted."""

    index: int
    pts: float
    frame: av.VideoFrame
    captured: float

    def to_frame(self) -> Frame:
        return Frame(self.index, self.pts, self.frame.to_ndarray(format="rgb24"), captured=self.captured)
UDP_REFUSED = ("RTSP over UDP is refused: the server chooses where RTP comes from and where RTCP "
               "is sent, which the network policy cannot hold; use TCP, or set source.rtsp_udp: true")


class LiveSource:
    """Frames of an RTSP or HTTP stream, freshest first when the consumer falls behind.

    A :class:`~streamer.sources.frames.Source`, as :class:`~streamer.sources.files.FileSource` is:
    ``fps``, ``width``, ``height`` (of the first frame), ``frame_count_estimate``
    (None), ``stats``, ``is_live`` (True), iteration (once), ``close()`` and use as a
    context manager.

    With ``wait=True`` (the default) the constructor returns once the first frame has
    been decoded, so ``width``/``height``/``fps`` are known, retrying with backoff; it
    raises :class:`SourceError` if nothing arrives within ``cfg.give_up_s``. With
    ``wait=False`` it returns at once with the connection being made in the background
    (``width``/``height``/``fps`` are 0 until then): call :meth:`wait_ready` from a
    worker thread, and :meth:`close` from any thread to abort it.

    ``on_event(name, data)`` is called from the reader thread with
    ``("reconnecting", {"attempt", "delay_s", "error"})`` before each retry (including
    retries of the first connection) and ``("reconnected", {"attempt", "down_s"})``
    when a retry delivers a frame. ``transport`` is RTSP's (:class:`~streamer.sources.urls.Transport`;
    UDP is refused unless ``cfg.rtsp_udp``). ``resolve`` looks host names up (the system's resolver by
    default); the policy comes from ``cfg`` (``local_networks: auto`` allows loopback and
    private ranges here: the service decides "auto" before it opens sources).
    """

    def __init__(self, spec: SourceSpec, cfg: SourceConfig, on_event: EventCallback | None = None,
                 transport: Transport = Transport.TCP, *, wait: bool = True,
                 resolve: Resolver = system_resolver) -> None:
        if spec.kind not in _READ_TIMEOUT_S:
            raise ValueError(f"LiveSource reads rtsp and http sources, not {str(spec.kind)!r}")
        try:
            transport = Transport(transport)   # a plain word from a caller: the member it names
        except ValueError:
            raise ValueError(f"transport must be {' or '.join(repr(str(t)) for t in Transport)}, "
                             f"got {transport!r}") from None
        if cfg.queue_frames < 1:
            raise ValueError(f"SourceConfig.queue_frames must be >= 1, got {cfg.queue_frames}")
        if spec.kind == SourceKind.RTSP and transport == Transport.UDP and not cfg.rtsp_udp:
            raise SourceRefused(f"{spec.label}: {UDP_REFUSED}")
        self._gateway = Gateway(NetworkPolicy.from_config(cfg), resolve)
        self.spec = spec
        self.cfg = cfg
        self.label = spec.label
        self.transport = transport
        self.fps: float = 0.0
        self.width = self.height = 0
        self.frame_count_estimate: int | None = None
        self.stats: SourceStats = {"received": 0, "yielded": 0, "dropped": 0, "dropped_stale": 0,
                            "skipped_by_sampling": 0, "decode_errors": 0, "reconnects": 0,
                            "last_error": None}
        self._keep = Sampler(cfg)   # every / fps apply to live streams as to files
        self._on_event = on_event
        self._cond = threading.Condition()
        self._buffer: deque[tuple[_Decoded, float]] = deque()  # (frame, monotonic arrival)
        self._ready = False
        self._failure: SourceError | None = None
        self._closed = threading.Event()
        self._timeline = _Timeline()
        self._thread = threading.Thread(target=self._read, name=f"live-source {self.label}",
                                        daemon=True)
        self._thread.start()
        if wait:
            try:
                self.wait_ready()
            except SourceError:
                self.close()
                raise

    @property
    def is_live(self) -> bool:
        """Live sources drop frames rather than hold the camera back."""
        return True

    @property
    def backlog(self) -> int:
        """Frames decoded and waiting for the consumer: more than a few, and the consumer
        is falling behind the camera (at ``queue_frames`` it drops them)."""
        return len(self._buffer)

    def wait_ready(self) -> None:
        """Block until the first frame is decoded; :class:`SourceError` if the source
        gave up first or :meth:`close` was called."""
        with self._cond:
            while not self._ready and self._failure is None and not self._closed.is_set():
                self._cond.wait()
            if self._ready:
                return
            if self._failure is not None:
                raise self._failure
        raise SourceError(f"{self.label}: closed before the first frame arrived")

    def __iter__(self) -> Iterator[Frame]:
        try:
            while True:
                with self._cond:
                    while not self._buffer and self._failure is None and not self._closed.is_set():
                        self._cond.wait()
                    if self._closed.is_set():
                        return
                    if not self._buffer:
                        assert self._failure is not None  # what ended the wait
                        raise self._failure
                    decoded, arrived = self._buffer.popleft()
                    if time.monotonic() - arrived > self.cfg.staleness_s:
                        self.stats["dropped"] += 1
                        self.stats["dropped_stale"] += 1
                        continue
                    self.stats["yielded"] += 1
                yield decoded.to_frame()   # converted outside the lock, in the consumer's thread
        finally:
            self.close()

    def close(self) -> None:
        """Stop reading and release a waiting iterator or :meth:`wait_ready` at once.

        Safe from any thread and more than once. The reader thread exits on its own
        within a read timeout (FFmpeg cannot be interrupted from outside).
        """
        with self._cond:
            self._closed.set()
            self._buffer.clear()
            self._cond.notify_all()
        self._gateway.close()   # ends the connection FFmpeg may be waiting on

    def __enter__(self) -> "LiveSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reader thread ----------------------------------------------------------------

    def _read(self) -> None:
        """The reader thread: whatever happens, the consumer is not left waiting."""
        try:
            self._read_with_reconnects()
        except Exception as e:
            # Only the type: a message may quote the URL, and with it the credentials.
            log.error("%s: reader failed with %s", self.label, type(e).__name__)
            self._fail(SourceError(f"{self.label}: reader failed ({type(e).__name__})"))

    def _read_with_reconnects(self) -> None:
        """Connect, decode, reconnect; until closed or given up."""
        attempt = 0
        down_since = time.monotonic()  # the source counts as down until its first frame
        while not self._closed.is_set():
            last_frame = None
            try:
                for frame in self._connection(down_since):
                    if last_frame is None and attempt:
                        self._recovered(attempt, time.monotonic() - down_since)
                        attempt = 0
                    self._push(frame)
                    last_frame = time.monotonic()
                reason = "the stream ended"
            except SourceTooLarge as e:  # another attempt would bring the same frames
                self._fail(SourceTooLarge(f"{self.label}: {e}"))
                return
            except (SourceRefused, SourceRejected) as e:   # the same answer would come next time
                self._refused(e)
                return
            except (av.error.FFmpegError, OSError, SourceError) as e:
                reason = ffmpeg_reason(e)
            if self._closed.is_set():
                return
            if last_frame is not None:  # down since its last frame, not since noticing
                down_since = last_frame
            with self._cond:
                self.stats["last_error"] = reason
            down = time.monotonic() - down_since
            if down >= self.cfg.give_up_s:
                self._fail(SourceUnreachable(f"{self.label}: unreachable for {down:.0f} s: {reason}"))
                return
            attempt += 1
            delay = min(self.cfg.reconnect_s * 2 ** (attempt - 1), self.cfg.reconnect_max_s)
            delay = min(delay * random.uniform(1 - _JITTER, 1), self.cfg.give_up_s - down)
            with self._cond:
                self.stats["reconnects"] += 1   # each attempt, as the events count them
            self._emit("reconnecting", {"attempt": attempt, "delay_s": round(delay, 3), "error": reason})
            if self._closed.wait(delay):
                return

    def _connection(self, down_since: float) -> Iterator[_Decoded]:
        """Open the stream once and yield its frames until it ends or fails."""
        options = {**self.spec.av_options, "analyzeduration": _ANALYZE_US}
        if self.spec.kind == SourceKind.RTSP:
            # the word itself: FFmpeg's options (Cython) take no str subclass
            options.update(rtsp_transport=self.transport.value, allowed_media_types="video")
        # An attempt must not outlast the give-up deadline by a whole open timeout.
        left = self.cfg.give_up_s - (time.monotonic() - down_since)
        open_timeout = max(0.5, min(self.cfg.open_timeout_s, left))
        read_timeout = _READ_TIMEOUT_S[self.spec.kind]
        opening = time.monotonic()
        route = self._gateway.attempt(lambda: self._route(open_timeout, read_timeout))
        try:
            yield from self._demux(route, options, opening, open_timeout, read_timeout)
        except (av.error.FFmpegError, OSError) as e:
            # FFmpeg saw an I/O error; the gateway knows what was refused, what the server
            # answered, or why the onward connection failed, in words
            self._gateway.check()
            rejection = self._gateway.rejection or _final_answer(e)
            if rejection is not None:
                raise SourceRejected(f"answered {rejection}") from None
            if self._gateway.error is not None:
                raise SourceError(self._gateway.error) from None
            raise
        finally:
            route.close()

    def _route(self, open_timeout: float, read_timeout: float) -> Route:
        """This attempt's way to the stream, made through the gateway as the kind needs:
        RTSP connects now (a refusal raises here), HTTP when FFmpeg asks."""
        if self.spec.kind == SourceKind.HTTP:
            return http_route(self._gateway, self.spec, open_timeout, read_timeout)
        return rtsp_route(self._gateway, self.spec, self.transport, open_timeout)

    def _open(self, route: Route, options: dict, opening: float, open_timeout: float,
              read_timeout: float) -> av.container.InputContainer:
        try:
            return av.open(route.url, container_options={**options, **route.options},
                           metadata_errors="replace", timeout=(open_timeout, read_timeout),
                           io_open=route.io_open)
        except av.error.FFmpegError as e:
            self._gateway.check()
            # PyAV's timeout interrupts FFmpeg, which some demuxers then report as
            # invalid data: the clock tells a silent server from a broken one.
            if isinstance(e, av.error.ExitError) or time.monotonic() - opening >= open_timeout:
                raise SourceError(f"no answer within {open_timeout:.3g} s") from None
            raise

    def _video_stream(self, container: av.container.InputContainer) -> av.video.stream.VideoStream:
        """The container's first video stream, set up to decode (size limit, threads, rate)."""
        if not container.streams.video:
            raise SourceError("no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None:
            raise SourceError("its video stream is in a codec that cannot be decoded here")
        self._check_size(ctx.width or 0, ctx.height or 0)
        stream.thread_type = decode_threading(ctx.width or 0, ctx.height or 0)
        # the decoder refuses larger frames before allocating them (counted below)
        ctx.options = {"max_pixels": str(self.cfg.max_width * self.cfg.max_height)}
        if not self.fps:
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.fps = float(rate) if rate else 0.0
        return stream

    def _demux(self, route: Route, options: dict, opening: float, open_timeout: float,
               read_timeout: float) -> Iterator[_Decoded]:
        container = self._open(route, options, opening, open_timeout, read_timeout)
        stalled = SourceError(f"no data for {read_timeout:g} s")
        try:
            stream = self._video_stream(container)
            self._timeline.new_connection()
            packets = container.demux(stream)
            arrivals = _Arrivals()
            while True:
                waited = time.monotonic()
                packet = next(packets, None)
                self._gateway.check()    # a refused segment or redirect ends the source
                if packet is None:
                    return
                arrivals.note(packet.pts)
                # A read that ran into the timeout returns what the parser still held
                # (the last frame) instead of an error, and only the next read fails: a
                # whole timeout later. The wait itself says the link has gone quiet.
                silent = time.monotonic() - waited >= read_timeout
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as e:  # a damaged packet, not a dead source
                    with self._cond:
                        self.stats["decode_errors"] += 1
                        self.stats["last_error"] = ffmpeg_reason(e)
                    decoded = []
                for f in decoded:
                    if self._closed.is_set():
                        return
                    if f.width > self.cfg.max_width or f.height > self.cfg.max_height:
                        if not self._ready:
                            self._check_size(f.width, f.height)
                        with self._cond:
                            self.stats["decode_errors"] += 1
                            self.stats["last_error"] = f"a {f.width}x{f.height} frame is above the size limit"
                        continue
                    yield self._frame(f, arrivals.of(f.pts))
                if silent:
                    raise stalled
        except av.error.ExitError:
            self._gateway.check()
            raise stalled from None
        finally:
            container.close()

    def _check_size(self, width: int, height: int) -> None:
        if width > self.cfg.max_width or height > self.cfg.max_height:
            raise SourceTooLarge(f"{width}x{height} frames are larger than the {self.cfg.max_width}x"
                                 f"{self.cfg.max_height} limit (source.max_width, source.max_height)")

    def _frame(self, f: av.VideoFrame, arrived: float | None = None) -> _Decoded:
        """Number and timestamp a decoded frame (converted only if it is yielded);
        ``arrived``: the wall time its data came in (else now)."""
        now, wall = time.monotonic(), time.time()
        raw = float(f.pts * f.time_base) if f.pts is not None and f.time_base else None
        pts = self._timeline(raw, now, 1 / self.fps if self.fps else 0.04)
        with self._cond:
            index = self.stats["received"]
            self.stats["received"] += 1
        return _Decoded(index, pts, f, arrived if arrived is not None else wall)

    def _push(self, frame: _Decoded) -> None:
        """Buffer a frame, dropping the oldest when full; the first one makes us ready."""
        with self._cond:
            if self._closed.is_set():
                return
            if not self._keep(frame):   # left out on purpose: not a drop, and no buffer slot
                self.stats["skipped_by_sampling"] += 1
                return
            if len(self._buffer) >= self.cfg.queue_frames:
                self._buffer.popleft()
                self.stats["dropped"] += 1
            self._buffer.append((frame, time.monotonic()))
            if not self._ready:
                self.height, self.width = frame.frame.height, frame.frame.width
                self._ready = True
            self._cond.notify_all()

    def _refused(self, e: SourceRefused | SourceRejected) -> None:
        """Fail with an answer every retry would get again: the policy's refusal, or the
        server's final answer ("rtsp://cam/x answered 404 Not Found")."""
        if self._closed.is_set():
            return
        named = f"{self.label} {e}" if isinstance(e, SourceRejected) else f"{self.label}: {e}"
        with self._cond:
            self.stats["last_error"] = named if isinstance(e, SourceRejected) else str(e)
        self._fail(type(e)(named))

    def _recovered(self, attempt: int, down_s: float) -> None:
        self._emit("reconnected", {"attempt": attempt, "down_s": round(down_s, 3)})

    def _fail(self, error: SourceError) -> None:
        with self._cond:
            self._failure = error
            self._cond.notify_all()

    def _emit(self, name: str, data: dict) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(name, data)
        except Exception:  # a broken listener must not stop the stream
            log.exception("%s: on_event(%r) failed", self.label, name)


# Above this many pixels a frame is decoded with frame threads (see decode_threading).
_FRAME_THREADS_ABOVE = 1920 * 1088


def decode_threading(width: int, height: int) -> str:
    """How a live stream's decoder runs in parallel (PyAV's ``thread_type``).

    Slices, not frames, up to 1080p: frame threading (what "AUTO" picks for H.264) keeps
    a frame per extra thread inside the decoder, so each frame came out two frames (67 ms
    at 30 fps) after its data arrived, for no less CPU, while one thread decodes a 1080p
    frame in a few ms. A larger frame of a camera that sends one slice a frame would be
    decoded by one thread alone (a 4K one: 9.5 ms against 6 ms with frame threads on this
    machine's cores, docs/performance.md), so there the frames go in parallel and the
    delay is paid. A file, which has no clock to keep, always decodes frames in parallel
    (sources.files); 0 x 0 (not known yet) counts as small."""
    return "AUTO" if width * height > _FRAME_THREADS_ABOVE else "SLICE"


def _final_answer(e: Exception) -> str | None:
    """The final answer in an error of FFmpeg's own RTSP client (over UDP, where no relay
    reads the replies): FFmpeg names 401, 403 and 404 only, and 410 not at all."""
    for kind, status in ((av.error.HTTPUnauthorizedError, HTTPStatus.UNAUTHORIZED),
                         (av.error.HTTPForbiddenError, HTTPStatus.FORBIDDEN),
                         (av.error.HTTPNotFoundError, HTTPStatus.NOT_FOUND)):
        if isinstance(e, kind):
            return f"{status.value} {status.phrase}"
    return None


class _Arrivals:
    """When each packet arrived (wall time), by its timestamp, until its frame is decoded:
    a frame's ``captured`` is when the data it was decoded from came in, so that the
    latency a stream reports counts the decoder's own delay (reordered B-frames, and frame
    threads while they were used) and not only what follows it."""

    _KEEP = 64   # a decoder holds a few frames; more pending packets are never decoded

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._at: dict[int, float] = {}

    def note(self, pts: int | None) -> None:
        if pts is None:
            return
        if len(self._at) >= self._KEEP:
            self._at.pop(next(iter(self._at)))
        self._at.setdefault(pts, self._clock())

    def of(self, pts: int | None) -> float | None:
        """The arrival of frame ``pts``'s packet, and forget it (None: not known)."""
        return self._at.pop(pts, None) if pts is not None else None


class _Timeline:
    """One clock for all connections: seconds since the stream's first frame.

    Within a connection the stream's own timestamps are followed (they are steadier than
    arrival times); a new connection, a frame without a timestamp or a timestamp that
    goes backwards is placed by wall-clock time since the first frame, and never at or
    before the previous frame, so ``pts`` only increases.
    """

    def __init__(self) -> None:
        self._origin: float | None = None
        self._offset: float | None = None
        self._last: float | None = None

    def new_connection(self) -> None:
        self._offset = None

    def __call__(self, raw: float | None, now: float, step: float) -> float:
        if self._origin is None:
            self._origin = now
        pts = raw + self._offset if raw is not None and self._offset is not None else None
        if pts is None or (self._last is not None and pts <= self._last):
            pts = now - self._origin
            if self._last is not None:
                pts = max(pts, self._last + step)
            self._offset = pts - raw if raw is not None else None
        self._last = pts
        return pts
