"""RTSP 1.0 with RTP per RFC 6184: a video file as a live camera at ``rtsp://HOST:PORT/stream``.

:class:`RtspServer` answers OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, SET_PARAMETER and
TEARDOWN, and sends H.264 as RTP (single NAL unit and FU-A packets) either interleaved on
the RTSP connection or over UDP: the protocol stacks users point the service at.
"""
from __future__ import annotations

import base64
import random
import re
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Callable, cast

from streamer.sources.gateway import close_socket
from streamer.testbed.publisher import Subscription, nal_units
from streamer.testbed.server import MAX_LINE, ThreadedServer, read_headers

_RTP_PAYLOAD_TYPE = 96
_RTP_CLOCK = 90_000
_RTP_MAX_PAYLOAD = 1400       # keeps an RTP packet inside a 1500-byte Ethernet frame
_FU_A = 28


_RTSP_METHODS = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
_REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 454: "Session Not Found",
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
        self.subscription: Subscription | None = None
        self.sender: threading.Thread | None = None


class RtspServer(ThreadedServer):
    """Serves a video file as a live H.264 RTSP stream at ``rtsp://HOST:PORT/stream``.

    ``port=0`` picks a free port (read it back from :attr:`port` after :meth:`start`);
    ``fps`` overrides the file's frame rate for pacing; ``loop`` plays the file forever
    with continuous timestamps, otherwise the connection is closed when the file ends;
    ``replay`` encodes a short looping file once and replays it (see
    :class:`~streamer.testbed.publisher.Publisher`): for benchmarks, where the camera's
    encoder should not take the CPU being measured.
    """

    path = "/stream"
    scheme = "rtsp"

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
                    if code == 401:
                        headers["WWW-Authenticate"] = 'Basic realm="facestream"'
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
        self._check_request(request)
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
            _check_session(request, session)
        if method == "PLAY":
            return self._play(session, conn), b""
        if method == "TEARDOWN":
            self._end_session(session)
            if session.sender is not None:  # no RTP may follow the reply
                session.sender.join(timeout=2)
            session.send = None  # a new SETUP may follow on this connection
        return {}, b""

    def _check_request(self, request: _Request) -> None:
        """A method this server knows (501), from a client with the credentials, if any (401)."""
        if request.method not in _RTSP_METHODS.split(", "):
            raise _RtspError(501)
        if not self._authorized(request.headers):
            raise _RtspError(401)

    def _play(self, session: _RtspSession, conn: socket.socket) -> dict[str, str]:
        if session.subscription is None:
            session.subscription = self._publisher.subscribe()
            session.sender = self._spawn(self._stream, session, conn)
        rtptime = self._rtp_time(session, self._publisher.next_number)
        return {"Range": "npt=0.000-",
                "RTP-Info": f"url={self.url}/trackID=0;seq={session.seq};rtptime={rtptime}"}

    def _setup(self, request: _Request, session: _RtspSession, send: Callable[[bytes], None],
               peer) -> str:
        """Pick the first transport of the client's list that this server can serve."""
        for spec in request.headers.get("transport", "").split(","):
            parts = [p.strip() for p in spec.split(";")]
            params = {k: v for k, _, v in (p.partition("=") for p in parts[1:])}
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
        # PLAY set both up; a TEARDOWN may clear ``send`` later, which this keeps
        sub = cast(Subscription, session.subscription)
        deliver = cast(Callable[[bytes], None], session.send)
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
            _hang_up(conn)

    def _end_session(self, session: _RtspSession) -> None:
        sub, session.subscription = session.subscription, None
        if sub is not None:
            self._publisher.unsubscribe(sub)
        for sock in session.udp:
            self._forget(sock)
        session.udp = []


def _hang_up(conn: socket.socket, grace_s: float = 5.0) -> None:
    """End the connection gracefully: FIN after the last RTP packet, then close once the
    client has closed its side (the request reader sees that) or after ``grace_s``.

    Closing at once would lose the end of the file: a socket closed with unread client
    bytes (RTCP reports, a keep-alive) is reset, and a reset throws away the packets still
    queued to send, so the client would miss the last frame now and then."""
    try:
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    timer = threading.Timer(grace_s, close_socket, (conn,))
    timer.daemon = True
    timer.start()


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
        line = first + reader.readline(MAX_LINE)
        if not line.strip():
            continue  # stray CRLF between requests
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("RTSP/"):
            raise ValueError(f"not an RTSP request line: {line[:80]!r}")
        headers = read_headers(reader)
        length = int(headers.get("content-length", "0") or 0)
        if length:
            reader.read(min(length, 1 << 16))
        return _Request(parts[0].upper(), parts[1], headers)


def _url_path(url: str) -> str:
    """The path of an absolute rtsp:// URL (or of a bare path)."""
    match = re.match(r"^[a-zA-Z]+://[^/]*(/[^?#]*)?", url)
    return (match.group(1) or "/") if match else url.split("?")[0]


def _check_session(request: _Request, session: _RtspSession) -> None:
    """A request within a session must name the one this connection set up."""
    sent_id = request.headers.get("session", "").split(";")[0].strip()
    if session.send is None:
        raise _RtspError(455 if not sent_id else 454)
    if sent_id != session.id:
        raise _RtspError(454)


def _port_pair(text: str, low: int, high: int) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", text.strip())
    if not match:
        return None
    a = int(match.group(1))
    b = int(match.group(2)) if match.group(2) else a + 1
    return (a, b) if low <= a <= high and low <= b <= high else None


def _rtp_packets(unit_data: bytes, seq: int, timestamp: int, ssrc: int) -> list[bytes]:
    """RFC 6184 packets (single NAL unit or FU-A) for one access unit.

    Sequence numbers start at ``seq`` (mod 2^16); the marker bit is set on the last
    packet of the access unit; all packets carry ``timestamp`` (90 kHz, mod 2^32).
    """
    payloads: list[bytes] = []
    for nal in nal_units(unit_data):
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
