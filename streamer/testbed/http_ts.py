"""HTTP MPEG-TS: a video file as an endless live stream at ``http://HOST:PORT/stream.ts``."""
from __future__ import annotations

import socket
from fractions import Fraction

import av

from streamer.testbed.publisher import Subscription
from streamer.testbed.server import MAX_LINE, ThreadedServer, read_headers

_TS_CLOCK = 90_000            # MPEG-TS timestamps tick at 90 kHz


class HttpTsServer(ThreadedServer):
    """Serves a video file as an endless live MPEG-TS at ``http://HOST:PORT/stream.ts``.

    Each client gets its own muxer (so its stream starts with the tables and a
    keyframe) fed from the shared encoder; the body is close-delimited. Arguments as for
    :class:`~streamer.testbed.rtsp.RtspServer`.
    """

    path = "/stream.ts"
    scheme = "http"

    def _serve(self, conn: socket.socket, peer) -> None:
        reader = conn.makefile("rb")
        line = reader.readline(MAX_LINE).decode("latin-1").split()
        headers = read_headers(reader)
        if len(line) != 3 or not line[2].startswith("HTTP/"):
            return self._respond(conn, 400)
        if line[0] not in ("GET", "HEAD"):
            return self._respond(conn, 405)
        if line[1].split("?")[0] != self.path:
            return self._respond(conn, 404)
        if not self._authorized(headers):
            return self._respond(conn, 401)
        self._respond(conn, 200)
        if line[0] == "HEAD":
            return
        sub = self._publisher.subscribe()
        try:
            self._mux(sub, conn)
        finally:
            self._publisher.unsubscribe(sub)

    def _respond(self, conn: socket.socket, code: int) -> None:
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                  405: "Method Not Allowed"}[code]
        head = [f"HTTP/1.1 {code} {reason}", "Server: facestream", "Connection: close",
                "Cache-Control: no-cache, no-store"]
        if code == 401:
            head.append('WWW-Authenticate: Basic realm="facestream"')
        head.append("Content-Type: video/mp2t" if code == 200 else "Content-Length: 0")
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())

    def _mux(self, sub: Subscription, conn: socket.socket) -> None:
        rate = Fraction(self.fps).limit_denominator(1001)
        # flush_packets: every frame goes out as soon as it is muxed, as a live source must.
        with av.open(_SocketWriter(conn), "w", format="mpegts",
                     container_options={"flush_packets": "1"}) as out:
            stream = out.add_mux_stream("h264", rate=rate)
            stream.width, stream.height = self._publisher.width, self._publisher.height  # type: ignore[attr-defined]
            stream.time_base = Fraction(1, _TS_CLOCK)
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
