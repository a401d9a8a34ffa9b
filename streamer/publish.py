"""Publish a video file as a live stream: a small RTSP server and an HTTP MPEG-TS server.

Live sources have to be tested against the protocol stacks users point the service at,
and users need a way to try the service without a camera. Both servers here play a file
in real time, as a camera would: the file is decoded, looped if asked, encoded once to
H.264 (libx264, no B-frames, a keyframe every second) and every connected client gets the
same access units from the moment it joins, starting at a keyframe forced for it.

- :class:`RtspServer` speaks RTSP 1.0 (OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER,
  SET_PARAMETER, TEARDOWN) and sends RTP per RFC 6184 (single NAL unit and FU-A packets)
  either interleaved on the RTSP connection or over UDP.
- :class:`HttpTsServer` answers ``GET /stream.ts`` with an endless, close-delimited
  MPEG-TS.

Threads, not asyncio: each client costs a thread, which is fine for the handful of
clients a test or a demo has. :meth:`stop` closes every socket at once, so clients see the
connection drop, and the port can be bound again straight away (``SO_REUSEADDR``): tests
restart a server on the same port to exercise reconnects.
"""
from __future__ import annotations

import base64
import logging
import os
import random
import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Self

import av
from av.video.frame import PictureType

from streamer.gateway import close_socket

log = logging.getLogger(__name__)

_RTP_PAYLOAD_TYPE = 96
_RTP_CLOCK = 90_000
_RTP_MAX_PAYLOAD = 1400       # keeps an RTP packet inside a 1500-byte Ethernet frame
_FU_A = 28
_QUEUE_SECONDS = 2.0          # a client this far behind is resynchronised at a keyframe
_MAX_LINE = 8192
_MAX_HEADERS = 64
_START_CODE = re.compile(b"\x00\x00\x01")


@dataclass(frozen=True)
class _AccessUnit:
    """One encoded frame: Annex-B NAL units, its frame number since the publisher
    started (continuous across loops of the file), and whether it is a keyframe."""

    data: bytes
    number: int
    keyframe: bool


class _Subscription:
    """The access units one client has yet to send, starting at a keyframe.

    A client that falls more than a couple of seconds behind (a stalled TCP peer) loses
    its queue and waits for the next keyframe, which it asks for: a gap in the picture is
    what a live source does, and the rest of the clients never wait for it.
    """

    def __init__(self, limit: int, request_keyframe: Callable[[], None]) -> None:
        self._limit = limit
        self._request_keyframe = request_keyframe
        self._queue: deque[_AccessUnit] = deque()
        self._cond = threading.Condition()
        self._synced = False
        self._ended = False

    def put(self, unit: _AccessUnit) -> None:
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

    def end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def get(self) -> _AccessUnit | None:
        """The next access unit, or None once the publisher or the client has ended."""
        with self._cond:
            while not self._queue and not self._ended:
                self._cond.wait()
            return None if self._ended else self._queue.popleft()


class _Publisher:
    """Decodes the file in real time (looping if asked), encodes it once, fans it out.

    :meth:`start` opens the file and encodes its first frame before returning, so a file
    that is not a video fails there, and the H.264 parameter sets (for the SDP) are known
    before any client connects.
    """

    def __init__(self, video_path: str | os.PathLike, fps: float | None, loop: bool) -> None:
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be > 0 or None, got {fps}")
        self.path = str(video_path)
        self.loop = loop
        self._fps = fps
        self._subscribers: list[_Subscription] = []
        self._lock = threading.Lock()
        self._want_keyframe = False
        self._next_number = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"{self.path}: no such video file")
        with av.open(self.path) as probe:
            if not probe.streams.video:
                raise ValueError(f"{self.path}: has no video stream")
            stream = probe.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate or 25
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
        nals = list(_nal_units(header.data))
        self.sps = next(n for n in nals if n[0] & 0x1F == 7)
        self.pps = next(n for n in nals if n[0] & 0x1F == 8)
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

    def subscribe(self) -> _Subscription:
        sub = _Subscription(max(1, round(_QUEUE_SECONDS * self.fps)), self.request_keyframe)
        with self._lock:
            if self._stop.is_set():
                sub.end()
            else:
                self._subscribers.append(sub)
                self._want_keyframe = True
        return sub

    def unsubscribe(self, sub: _Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)
        sub.end()

    def request_keyframe(self) -> None:
        self._want_keyframe = True

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

    def _file_frames(self) -> Iterator[av.VideoFrame]:
        while True:
            decoded = 0
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    decoded += 1
                    yield frame
            if not self.loop or not decoded:
                return

    def _encode(self, frame: av.VideoFrame) -> _AccessUnit:
        image = frame.reformat(self.width, self.height, "yuv420p")
        image.pts = number = self._next_number
        self._next_number += 1
        # Set explicitly: a decoded frame carries its own picture type, which x264 would obey.
        image.pict_type = PictureType.I if self._want_keyframe else PictureType.NONE
        self._want_keyframe = False
        packets = self._encoder.encode(image)
        data = b"".join(bytes(p) for p in packets)
        return _AccessUnit(data, number, any(p.is_keyframe for p in packets))

    def _run(self) -> None:
        start = time.monotonic() - self._next_number / self.fps
        try:
            for frame in self._frames:
                due = start + self._next_number / self.fps
                late = time.monotonic() - due
                if late > 1.0:  # the machine stalled: carry on from now, never burst
                    start += late
                elif self._stop.wait(max(0.0, -late)):
                    return
                if not self._subscribers:  # nobody watching: keep the clock, skip the work
                    self._next_number += 1
                    continue
                unit = self._encode(frame)
                with self._lock:  # after encoding: a client that just joined gets its keyframe
                    subscribers = list(self._subscribers)
                for sub in subscribers:
                    sub.put(unit)
        except (av.error.FFmpegError, OSError) as e:
            log.warning("publishing %s stopped: %s", self.path, e)
        finally:
            self._frames.close()
            with self._lock:
                subscribers, self._subscribers = self._subscribers, []
                self._stop.set()
            for sub in subscribers:
                sub.end()


def _nal_units(data: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex-B byte stream, without start codes."""
    starts = [m.end() for m in _START_CODE.finditer(data)]
    for begin, end in zip(starts, starts[1:] + [len(data) + 3]):
        # A 4-byte start code leaves its leading zero behind the previous unit; NAL units
        # themselves never end in a zero byte (rbsp trailing bits).
        nal = data[begin:end - 3].rstrip(b"\x00")
        if nal:
            yield nal


def _rtp_packets(unit_data: bytes, seq: int, timestamp: int, ssrc: int) -> list[bytes]:
    """RFC 6184 packets (single NAL unit or FU-A) for one access unit.

    Sequence numbers start at ``seq`` (mod 2^16); the marker bit is set on the last
    packet of the access unit; all packets carry ``timestamp`` (90 kHz, mod 2^32).
    """
    payloads: list[bytes] = []
    for nal in _nal_units(unit_data):
        if len(nal) <= _RTP_MAX_PAYLOAD:
            payloads.append(nal)
            continue
        indicator = (nal[0] & 0xE0) | _FU_A
        kind = nal[0] & 0x1F
        body = nal[1:]
        step = _RTP_MAX_PAYLOAD - 2
        for offset in range(0, len(body), step):
            header = kind | (0x80 if offset == 0 else 0) | (0x40 if offset + step >= len(body) else 0)
            payloads.append(bytes((indicator, header)) + body[offset:offset + step])
    packets = []
    for i, payload in enumerate(payloads):
        marker = 0x80 if i == len(payloads) - 1 else 0
        packets.append(struct.pack("!BBHII", 0x80, marker | _RTP_PAYLOAD_TYPE, (seq + i) & 0xFFFF,
                                   timestamp & 0xFFFFFFFF, ssrc) + payload)
    return packets


class _Server:
    """A listening TCP socket, one thread per client, and a stop that closes everything."""

    path = "/"
    scheme = "tcp"

    def __init__(self, video_path: str | os.PathLike, host: str, port: int,
                 fps: float | None, loop: bool) -> None:
        self.host = host
        self.port = port
        self._publisher = _Publisher(video_path, fps, loop)
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def fps(self) -> float:
        return self._publisher.fps

    def start(self) -> Self:
        """Open the file, start publishing and listening; errors about the file raise here."""
        self._publisher.start()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
            listener.listen(16)
        except OSError:
            listener.close()
            self._publisher.stop()
            raise
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._spawn(self._accept, listener)
        return self

    def stop(self) -> None:
        """Close the listener and every client connection now; idempotent. A stopped
        server stays stopped: start a new one (on the same port, if wanted)."""
        with self._lock:
            self._stopped = True
            sockets, self._sockets = list(self._sockets), set()
            if self._listener is not None:
                sockets.append(self._listener)
        self._publisher.stop()
        for sock in sockets:
            close_socket(sock)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _spawn(self, target: Callable, *args) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name=f"{type(self).__name__}-{target.__name__}")
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def _track(self, sock: socket.socket) -> bool:
        """Register a socket for :meth:`stop` to close; False (and closed) once stopped."""
        with self._lock:
            if not self._stopped:
                self._sockets.add(sock)
                return True
        close_socket(sock)
        return False

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        close_socket(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, peer = listener.accept()
            except OSError:
                return  # closed by stop()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._track(conn):
                self._spawn(self._client, conn, peer)

    def _client(self, conn: socket.socket, peer) -> None:
        try:
            self._serve(conn, peer)
        except (OSError, ValueError, av.error.FFmpegError) as e:
            log.debug("%s client %s: %s", type(self).__name__, peer, e)
        finally:
            self._forget(conn)

    def _serve(self, conn: socket.socket, peer) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------
# RTSP
# ---------------------------------------------------------------------------------------

_RTSP_METHODS = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
_REASONS = {200: "OK", 404: "Not Found", 454: "Session Not Found",
            455: "Method Not Valid in This State", 459: "Aggregate Operation Not Allowed",
            461: "Unsupported Transport", 501: "Not Implemented"}


@dataclass
class _Request:
    method: str
    url: str
    headers: dict[str, str]


class _RtspError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(_REASONS[code])
        self.code = code


class _RtspSession:
    """What one RTSP connection has set up: where its RTP goes and the sender thread."""

    def __init__(self) -> None:
        self.id = f"{random.getrandbits(48):012X}"
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.rtp_base = random.getrandbits(32)
        self.send: Callable[[bytes], None] | None = None
        self.udp: list[socket.socket] = []
        self.subscription: _Subscription | None = None
        self.sender: threading.Thread | None = None


class RtspServer(_Server):
    """Serves a video file as a live H.264 RTSP stream at ``rtsp://HOST:PORT/stream``.

    ``port=0`` picks a free port (read it back from :attr:`port` after :meth:`start`);
    ``fps`` overrides the file's frame rate for pacing; ``loop`` plays the file forever
    with continuous timestamps, otherwise the connection is closed when the file ends.
    """

    path = "/stream"
    scheme = "rtsp"

    def __init__(self, video_path: str | os.PathLike, host: str = "127.0.0.1", port: int = 0,
                 fps: float | None = None, loop: bool = True) -> None:
        super().__init__(video_path, host, port, fps, loop)

    def _serve(self, conn: socket.socket, peer) -> None:
        reader = conn.makefile("rb")
        write_lock = threading.Lock()
        session = _RtspSession()

        def send(data: bytes) -> None:
            with write_lock:
                conn.sendall(data)

        try:
            while True:
                request = _read_request(reader)
                if request is None:
                    return
                cseq = request.headers.get("cseq", "0")
                try:
                    headers, body = self._handle(request, session, send, conn, peer)
                    code = 200
                except _RtspError as e:
                    headers, body, code = {}, b"", e.code
                head = [f"RTSP/1.0 {code} {_REASONS[code]}", f"CSeq: {cseq}", "Server: facestream"]
                if session.send is not None and request.method != "OPTIONS":
                    head.append(f"Session: {session.id};timeout=60")
                head += [f"{k}: {v}" for k, v in headers.items()]
                if body:
                    head.append(f"Content-Length: {len(body)}")
                send(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        finally:
            self._end_session(session)

    def _handle(self, request: _Request, session: _RtspSession, send: Callable[[bytes], None],
                conn: socket.socket, peer) -> tuple[dict[str, str], bytes]:
        method = request.method
        if method == "OPTIONS":
            return {"Public": _RTSP_METHODS}, b""
        if method not in _RTSP_METHODS.split(", "):
            raise _RtspError(501)
        path = _url_path(request.url)
        if method == "DESCRIBE":
            if path.rstrip("/") != self.path:
                raise _RtspError(404)
            return {"Content-Type": "application/sdp", "Content-Base": f"{self.url}/"}, self._sdp()
        if method == "SETUP":
            if path.rstrip("/") not in (self.path, f"{self.path}/trackID=0"):
                raise _RtspError(404)
            if session.send is not None:
                raise _RtspError(459)  # one track: a second SETUP has nothing to set up
            return {"Transport": self._setup(request, session, send, peer)}, b""
        if method in ("PLAY", "TEARDOWN", "GET_PARAMETER", "SET_PARAMETER"):
            sent_id = request.headers.get("session", "").split(";")[0].strip()
            if session.send is None:
                raise _RtspError(455 if not sent_id else 454)
            if sent_id != session.id:
                raise _RtspError(454)
        if method == "PLAY":
            if session.subscription is None:
                session.subscription = self._publisher.subscribe()
                session.sender = self._spawn(self._stream, session, conn)
            rtptime = self._rtp_time(session, self._publisher.next_number)
            return {"Range": "npt=0.000-",
                    "RTP-Info": f"url={self.url}/trackID=0;seq={session.seq};rtptime={rtptime}"}, b""
        if method == "TEARDOWN":
            self._end_session(session)
            if session.sender is not None:  # no RTP may follow the reply
                session.sender.join(timeout=2)
            session.send = None  # a new SETUP may follow on this connection
        return {}, b""

    def _setup(self, request: _Request, session: _RtspSession, send: Callable[[bytes], None],
               peer) -> str:
        """Pick the first transport of the client's list that this server can serve."""
        for spec in request.headers.get("transport", "").split(","):
            parts = [p.strip() for p in spec.split(";")]
            params = dict(p.split("=", 1) if "=" in p else (p, "") for p in parts[1:])
            if "multicast" in params:
                continue
            if parts[0] == "RTP/AVP/TCP":
                channel = _port_pair(params.get("interleaved", "0-1"), 0, 255)
                if channel is None:
                    continue
                prefix = struct.pack("!cB", b"$", channel[0])

                def send_interleaved(packet: bytes) -> None:
                    send(prefix + struct.pack("!H", len(packet)) + packet)

                session.send = send_interleaved
                return f"RTP/AVP/TCP;unicast;interleaved={channel[0]}-{channel[1]};ssrc={session.ssrc:08X}"
            if parts[0] in ("RTP/AVP", "RTP/AVP/UDP"):
                client = _port_pair(params.get("client_port", ""), 1, 65535)
                if client is None:
                    continue
                family = socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
                rtp, rtcp = socket.socket(family, socket.SOCK_DGRAM), socket.socket(family, socket.SOCK_DGRAM)
                session.udp = [rtp, rtcp]
                if not (self._track(rtp) and self._track(rtcp)):
                    raise _RtspError(455)
                rtp.bind((self.host, 0))
                rtcp.bind((self.host, 0))  # bound so the client's RTCP reports have a home
                destination = (peer[0], client[0])

                def send_udp(packet: bytes) -> None:
                    rtp.sendto(packet, destination)

                session.send = send_udp
                return (f"RTP/AVP;unicast;client_port={client[0]}-{client[1]};"
                        f"server_port={rtp.getsockname()[1]}-{rtcp.getsockname()[1]};"
                        f"ssrc={session.ssrc:08X}")
        raise _RtspError(461)

    def _sdp(self) -> bytes:
        pub = self._publisher
        sets = ",".join(base64.b64encode(n).decode() for n in (pub.sps, pub.pps))
        ip = "IP6" if ":" in self.host else "IP4"
        lines = ["v=0", f"o=- {random.getrandbits(32)} 1 IN {ip} {self.host}", "s=facestream publish",
                 f"c=IN {ip} {'::' if ip == 'IP6' else '0.0.0.0'}", "t=0 0", "a=control:*",
                 f"m=video 0 RTP/AVP {_RTP_PAYLOAD_TYPE}",
                 f"a=rtpmap:{_RTP_PAYLOAD_TYPE} H264/{_RTP_CLOCK}",
                 f"a=fmtp:{_RTP_PAYLOAD_TYPE} packetization-mode=1;"
                 f"profile-level-id={pub.sps[1:4].hex().upper()};sprop-parameter-sets={sets}",
                 f"a=framerate:{pub.fps:g}", "a=control:trackID=0"]
        return ("\r\n".join(lines) + "\r\n").encode()

    def _rtp_time(self, session: _RtspSession, number: int) -> int:
        return (session.rtp_base + round(number * _RTP_CLOCK / self._publisher.fps)) & 0xFFFFFFFF

    def _stream(self, session: _RtspSession, conn: socket.socket) -> None:
        """Send every access unit of the subscription as RTP until either side ends."""
        sub, deliver = session.subscription, session.send
        try:
            while (unit := sub.get()) is not None:
                packets = _rtp_packets(unit.data, session.seq, self._rtp_time(session, unit.number),
                                      session.ssrc)
                session.seq = (session.seq + len(packets)) & 0xFFFF
                for packet in packets:
                    deliver(packet)
        except OSError:
            pass
        if session.subscription is sub:
            # Not a TEARDOWN: the file ended (no loop) or the peer is gone. Hang up, so
            # the client sees the end instead of waiting for packets that never come.
            close_socket(conn)

    def _end_session(self, session: _RtspSession) -> None:
        sub, session.subscription = session.subscription, None
        if sub is not None:
            self._publisher.unsubscribe(sub)
        for sock in session.udp:
            self._forget(sock)
        session.udp = []


def _read_request(reader) -> _Request | None:
    """The next RTSP request on the connection (RTP/RTCP the client interleaves is
    skipped); None when the client has closed it."""
    while True:
        first = reader.read(1)
        if not first:
            return None
        if first == b"$":
            header = reader.read(3)
            if len(header) < 3:
                return None
            reader.read(struct.unpack("!H", header[1:])[0])
            continue
        line = first + reader.readline(_MAX_LINE)
        if not line.strip():
            continue  # stray CRLF between requests
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("RTSP/"):
            raise ValueError(f"not an RTSP request line: {line[:80]!r}")
        headers = _read_headers(reader)
        length = int(headers.get("content-length", "0") or 0)
        if length:
            reader.read(min(length, 1 << 16))
        return _Request(parts[0].upper(), parts[1], headers)


def _read_headers(reader) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADERS):
        line = reader.readline(_MAX_LINE).decode("latin-1").strip()
        if not line:
            return headers
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    raise ValueError("too many header lines")


def _url_path(url: str) -> str:
    """The path of an absolute rtsp:// URL (or of a bare path)."""
    match = re.match(r"^[a-zA-Z]+://[^/]*(/[^?#]*)?", url)
    return (match.group(1) or "/") if match else url.split("?")[0]


def _port_pair(text: str, low: int, high: int) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", text.strip())
    if not match:
        return None
    a = int(match.group(1))
    b = int(match.group(2)) if match.group(2) else a + 1
    return (a, b) if low <= a <= high and low <= b <= high else None


# ---------------------------------------------------------------------------------------
# HTTP MPEG-TS
# ---------------------------------------------------------------------------------------


class HttpTsServer(_Server):
    """Serves a video file as an endless live MPEG-TS at ``http://HOST:PORT/stream.ts``.

    Each client gets its own muxer (so its stream starts with the tables and a
    keyframe) fed from the shared encoder; the body is close-delimited. Arguments as for
    :class:`RtspServer`.
    """

    path = "/stream.ts"
    scheme = "http"

    def __init__(self, video_path: str | os.PathLike, host: str = "127.0.0.1", port: int = 0,
                 fps: float | None = None, loop: bool = True) -> None:
        super().__init__(video_path, host, port, fps, loop)

    def _serve(self, conn: socket.socket, peer) -> None:
        reader = conn.makefile("rb")
        line = reader.readline(_MAX_LINE).decode("latin-1").split()
        _read_headers(reader)
        if len(line) != 3 or not line[2].startswith("HTTP/"):
            return self._respond(conn, 400)
        if line[0] not in ("GET", "HEAD"):
            return self._respond(conn, 405)
        if line[1].split("?")[0] != self.path:
            return self._respond(conn, 404)
        self._respond(conn, 200)
        if line[0] == "HEAD":
            return
        sub = self._publisher.subscribe()
        try:
            self._mux(sub, conn)
        finally:
            self._publisher.unsubscribe(sub)

    def _respond(self, conn: socket.socket, code: int) -> None:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}[code]
        head = [f"HTTP/1.1 {code} {reason}", "Server: facestream", "Connection: close",
                "Cache-Control: no-cache, no-store"]
        head.append("Content-Type: video/mp2t" if code == 200 else "Content-Length: 0")
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())

    def _mux(self, sub: _Subscription, conn: socket.socket) -> None:
        rate = Fraction(self.fps).limit_denominator(1001)
        # flush_packets: every frame goes out as soon as it is muxed, as a live source must.
        with av.open(_SocketWriter(conn), "w", format="mpegts",
                     container_options={"flush_packets": "1"}) as out:
            stream = out.add_mux_stream("h264", rate=rate)
            stream.width, stream.height = self._publisher.width, self._publisher.height
            stream.time_base = Fraction(1, _RTP_CLOCK)
            while (unit := sub.get()) is not None:
                packet = av.Packet(unit.data)
                packet.stream = stream
                packet.time_base = 1 / rate
                packet.pts = packet.dts = unit.number
                packet.is_keyframe = unit.keyframe
                out.mux(packet)


class _SocketWriter:
    """The write-only file object PyAV's muxer needs, on a socket."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn

    def write(self, data: bytes) -> int:
        self._conn.sendall(data)
        return len(data)
