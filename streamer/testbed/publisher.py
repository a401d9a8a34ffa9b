"""The shared half of the test-bed servers: a file decoded in real time, encoded once, fanned out.

Both servers play a file as a camera would: decoded at its frame rate (looped if asked),
encoded once to H.264 (libx264, no B-frames, a keyframe every second), and every connected
client gets the same access units from the moment it joins, starting at a keyframe forced
for it. Asked to ``replay``, a short looping file is encoded whole at start and its
access units replayed (a client then starts at the next keyframe, within a second): a
benchmark's camera should not spend the CPU of the service it feeds. The protocols
(:mod:`streamer.testbed.rtsp`, :mod:`streamer.testbed.http_ts`) only package those
access units.
"""
from __future__ import annotations

import itertools
import logging
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Callable, Generator, Iterator

import av
from av.video.frame import PictureType

log = logging.getLogger(__name__)

_QUEUE_SECONDS = 2.0          # a client this far behind is resynchronised at a keyframe
_REPLAY_FRAMES = 900          # a looping file this short is encoded once and replayed ...
_REPLAY_BYTES = 128 << 20     # ... unless its encoding grows past this
_START_CODE = re.compile(b"\x00\x00\x01")


@dataclass(frozen=True)
class AccessUnit:
    """One encoded frame: Annex-B NAL units, its frame number since the publisher
    started (continuous across loops of the file), and whether it is a keyframe."""

    data: bytes
    number: int
    keyframe: bool


class Subscription:
    """The access units one client has yet to send, starting at a keyframe.

    A client that falls more than a couple of seconds behind (a stalled TCP peer) loses
    its queue and waits for the next keyframe, which it asks for: a gap in the picture is
    what a live source does, and the rest of the clients never wait for it.
    """

    def __init__(self, limit: int, request_keyframe: Callable[[], None]) -> None:
        self._limit = limit
        self._request_keyframe = request_keyframe
        self._queue: deque[AccessUnit] = deque()
        self._cond = threading.Condition()
        self._synced = False
        self._ended = False

    def put(self, unit: AccessUnit) -> None:
        with self._cond:
            if not self._synced and not unit.keyframe:
                return
            if len(self._queue) >= self._limit:
                self._queue.clear()
                self._synced = False
                self._request_keyframe()
                return
            self._synced = True
            self._queue.append(unit)
            self._cond.notify()

    def end(self, drain: bool = False) -> None:
        """No more units. ``drain`` (the file ended) still hands out what is queued, so the
        client gets the last frame; otherwise (a stop, a TEARDOWN) the queue is dropped."""
        with self._cond:
            self._ended = True
            if not drain:
                self._queue.clear()
            self._cond.notify_all()

    def get(self) -> AccessUnit | None:
        """The next access unit, or None once the publisher or the client has ended."""
        with self._cond:
            while not self._queue and not self._ended:
                self._cond.wait()
            return self._queue.popleft() if self._queue else None


class Publisher:
    """Decodes the file in real time (looping if asked), encodes it once, fans it out.

    :meth:`start` opens the file and encodes its first frame before returning, so a file
    that is not a video fails there, and the H.264 parameter sets (for the SDP) are known
    before any client connects.
    """

    def __init__(self, video_path: str | os.PathLike, fps: float | None, loop: bool,
                 replay: bool = False) -> None:
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be > 0 or None, got {fps}")
        self.path = str(video_path)
        self.loop = loop
        self.replay = replay
        self._fps = fps
        self._subscribers: list[Subscription] = []
        self._lock = threading.Lock()
        self._want_keyframe = False
        self._next_number = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._replay: list[AccessUnit] | None = None
        self._passes = 0     # times the file has been opened to play

    def start(self) -> None:
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"{self.path}: no such video file")
        with av.open(self.path) as probe:
            if not probe.streams.video:
                raise ValueError(f"{self.path}: has no video stream")
            stream = probe.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate or 25
            frame_count = stream.frames
        self.fps = float(self._fps or rate)
        self._frames = self._file_frames()
        first = next(self._frames, None)
        if first is None:
            raise ValueError(f"{self.path}: no frame could be decoded")
        # x264 needs even dimensions for 4:2:0.
        self.width, self.height = first.width // 2 * 2, first.height // 2 * 2
        self._encoder = self._open_encoder()
        self._want_keyframe = True
        header = self._encode(first)
        nals = list(nal_units(header.data))
        self.sps = next(n for n in nals if n[0] & 0x1F == 7)
        self.pps = next(n for n in nals if n[0] & 0x1F == 8)
        if self.replay and self.loop and 0 < frame_count <= _REPLAY_FRAMES:
            self._replay = self._encode_rest(header)
        self._thread = threading.Thread(target=self._run, name="publish-encoder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with self._lock:
            subscribers, self._subscribers = self._subscribers, []
        for sub in subscribers:
            sub.end()

    def subscribe(self) -> Subscription:
        sub = Subscription(max(1, round(_QUEUE_SECONDS * self.fps)), self.request_keyframe)
        with self._lock:
            if self._stop.is_set():
                sub.end()
            else:
                self._subscribers.append(sub)
                self._want_keyframe = True
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)
        sub.end()

    def request_keyframe(self) -> None:
        self._want_keyframe = True  # a replayed file has one every second anyway

    @property
    def next_number(self) -> int:
        """Frame number of the next access unit to be published."""
        return self._next_number

    def _open_encoder(self) -> av.VideoCodecContext:
        rate = Fraction(self.fps).limit_denominator(1001)
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt = self.width, self.height, "yuv420p"
        encoder.time_base, encoder.framerate = 1 / rate, rate
        encoder.gop_size = max(1, round(self.fps))
        encoder.max_b_frames = 0
        # Without a global header x264 repeats SPS/PPS before every keyframe, so a client
        # joining late can decode even if it ignores the SDP's sprop-parameter-sets.
        encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
        return encoder

    def _file_frames(self) -> Generator[av.VideoFrame, None, None]:
        while True:
            self._passes += 1
            decoded = 0
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    decoded += 1
                    yield frame
            if not self.loop or not decoded:
                return

    def _encode_rest(self, first: AccessUnit) -> list[AccessUnit] | None:
        """The file's access units, ``first`` then the rest of its first pass (the encoder
        puts a keyframe every second); None when the encoding grows past _REPLAY_BYTES
        (the file is then encoded as it plays)."""
        units, size = [first], len(first.data)
        for frame in self._frames:
            if self._passes > 1:   # the file ended: this is its first frame again
                self._frames.close()
                return units
            units.append(self._encode(frame))
            size += len(units[-1].data)
            if size > _REPLAY_BYTES:
                return None
        return units

    def _units(self) -> Iterator[Callable[[], AccessUnit]]:
        """Per frame to publish, what makes its access unit (called only while someone
        watches): the replay's next unit renumbered, or the next frame encoded."""
        if self._replay is None:
            for frame in self._frames:
                yield partial(self._encode, frame)
            return
        for unit in itertools.cycle(self._replay):
            yield partial(self._renumber, unit)

    def _renumber(self, unit: AccessUnit) -> AccessUnit:
        number, self._next_number = self._next_number, self._next_number + 1
        return AccessUnit(unit.data, number, unit.keyframe)

    def _encode(self, frame: av.VideoFrame) -> AccessUnit:
        image = frame.reformat(self.width, self.height, "yuv420p")
        image.pts = number = self._next_number
        self._next_number += 1
        # Set explicitly: a decoded frame carries its own picture type, which x264 would obey.
        image.pict_type = PictureType.I if self._want_keyframe else PictureType.NONE
        self._want_keyframe = False
        packets = self._encoder.encode(image)
        data = b"".join(bytes(p) for p in packets)
        return AccessUnit(data, number, any(p.is_keyframe for p in packets))

    def _run(self) -> None:
        start = time.monotonic() - self._next_number / self.fps
        try:
            for make_unit in self._units():
                due = start + self._next_number / self.fps
                late = time.monotonic() - due
                if late > 1.0:  # the machine stalled: carry on from now, never burst
                    start += late
                elif self._stop.wait(max(0.0, -late)):
                    return
                if not self._subscribers:  # nobody watching: keep the clock, skip the work
                    self._next_number += 1
                    continue
                unit = make_unit()
                with self._lock:  # after encoding: a client that just joined gets its keyframe
                    subscribers = list(self._subscribers)
                for sub in subscribers:
                    sub.put(unit)
        except (av.error.FFmpegError, OSError) as e:
            log.warning("publishing %s stopped: %s", self.path, e)
        finally:
            self._frames.close()
            with self._lock:
                ended_by_file = not self._stop.is_set()
                subscribers, self._subscribers = self._subscribers, []
                self._stop.set()
            for sub in subscribers:
                sub.end(drain=ended_by_file)


def nal_units(data: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex-B byte stream, without start codes."""
    starts = [m.end() for m in _START_CODE.finditer(data)]
    for begin, end in zip(starts, starts[1:] + [len(data) + 3]):
        # A 4-byte start code leaves its leading zero behind the previous unit; NAL units
        # themselves never end in a zero byte (rbsp trailing bits).
        nal = data[begin:end - 3].rstrip(b"\x00")
        if nal:
            yield nal

