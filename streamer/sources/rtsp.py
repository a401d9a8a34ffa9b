"""RTSP sources connected the network policy's way, through a relay FFmpeg talks to.

FFmpeg's RTSP client makes its own connection and cannot be handed a socket, so the
gateway connects to a checked address first and FFmpeg is pointed at a one-connection
relay on loopback (:class:`RtspRelay`) that forwards to it. The relay reads the server's
replies: a redirect (3xx) is refused, since FFmpeg would follow it with a connection of
its own, and each status is told to the gateway (a 404 or a 401 that FFmpeg gives up
on fails the source at once). RTP comes interleaved on the checked connection (TCP). ``rtsps://`` is TLS from
the relay to the camera (name as SNI). RTSP over UDP is refused unless
``source.rtsp_udp`` is set, because the server names the endpoints RTP comes from and
RTCP goes to; when it is set FFmpeg connects to the checked address itself (an IP
literal: no lookup) and those endpoints, and redirects, are outside the policy.
Why every connection goes through a :class:`~streamer.sources.gateway.Gateway` is said there.
"""
from __future__ import annotations

import re
import select
import socket
import ssl
import threading
from typing import Callable
from urllib.parse import urlsplit

from streamer.sources.gateway import Gateway, Route, close_socket, shown_url, tls
from streamer.sources.netpolicy import DEFAULT_PORTS, Address, NetworkRefused
from streamer.sources.urls import SourceRefused, SourceSpec, Transport

_MAX_RTSP_HEAD = 65536
_RTSP_STATUS = re.compile(rb"^RTSP/\d\.\d (\d{3}) ?([^\r\n]*)")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def rtsp_route(gateway: Gateway, spec: SourceSpec, transport: Transport, open_timeout_s: float) -> Route:
    """One attempt at an RTSP source, connected here already: a refused or unreachable
    camera raises (:class:`NetworkRefused`, ``OSError``). Over ``udp`` FFmpeg is given the
    checked address; over ``tcp`` the relay's, and the connection waits ``open_timeout_s``."""
    parts = urlsplit(spec.target)
    host, port = parts.hostname or "", parts.port or DEFAULT_PORTS[parts.scheme]
    try:
        addresses = gateway.addresses(host, port)
    except NetworkRefused as e:
        raise gateway.refuse(e) from None
    if transport == Transport.UDP:
        return Route(_with_netloc(spec.target, _host_port(addresses[0], port)))
    upstream = gateway.connect(addresses, port, open_timeout_s)
    if parts.scheme == "rtsps":
        upstream = tls(upstream, host)
    relay = RtspRelay(upstream, gateway, open_timeout_s).start()
    url = _with_netloc(spec.target, f"127.0.0.1:{relay.port}").replace("rtsps://", "rtsp://", 1)
    return Route(url, close=relay.close)


class RtspRelay:
    """One RTSP connection from FFmpeg on loopback, forwarded to the checked upstream
    connection; the server's replies are read and a redirect is refused."""

    def __init__(self, upstream: socket.socket, gateway: Gateway, timeout_s: float) -> None:
        self.upstream = upstream
        self.gateway = gateway
        self.timeout_s = timeout_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._client: socket.socket | None = None
        self._closed = threading.Event()

    def start(self) -> "RtspRelay":
        threading.Thread(target=self._run, name=f"rtsp-relay-{self.port}", daemon=True).start()
        return self

    def close(self) -> None:
        self._closed.set()
        for sock in (self.listener, self._client, self.upstream):
            if sock is not None:
                close_socket(sock)

    def _run(self) -> None:
        try:
            self.listener.settimeout(self.timeout_s)
            client, _ = self.listener.accept()   # FFmpeg's, which connects at once
            self._client = client
            close_socket(self.listener)                # one connection: nothing else gets in
            replies = _RtspReplies(self.gateway)
            _pump(client, self.upstream, replies.feed, self._closed)
        except (OSError, SourceRefused):
            pass
        finally:
            self.close()


class _RtspReplies:
    """Splits the server-to-client byte stream into RTSP messages and interleaved
    frames, passing them on whole; a redirect reply is refused instead."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._buffer = b""

    def feed(self, data: bytes) -> bytes:
        """The whole messages ``data`` completes, in order; a partial one waits for the
        rest. Read by position, not by cutting the buffer after each message: a read of
        64 KiB holds dozens of RTP packets."""
        buf = self._buffer + data if self._buffer else data
        pos, end = 0, len(buf)
        while pos < end:
            if buf[pos] == 0x24:                  # "$": interleaved RTP/RTCP: $, channel, length
                if end - pos < 4 or end - pos < 4 + int.from_bytes(buf[pos + 2:pos + 4], "big"):
                    break
                size = 4 + int.from_bytes(buf[pos + 2:pos + 4], "big")
            else:
                blank = _BLANK_LINE.search(buf, pos)
                if blank is None:
                    if end - pos > _MAX_RTSP_HEAD:
                        raise self.gateway.refuse(SourceRefused("the RTSP server sent a malformed reply"))
                    break
                head = buf[pos:blank.end()]
                length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
                size = len(head) + (int(length.group(1)) if length else 0)
                if end - pos < size:
                    break
                self._check(head)
            pos += size
        self._buffer = buf[pos:]
        return buf[:pos]

    def _check(self, head: bytes) -> None:
        """Tell the gateway a reply's status, before FFmpeg reads it (a 404 it fails on is
        known by then); refuse a redirect."""
        status = _RTSP_STATUS.match(head)
        if status:
            self.gateway.answered(int(status.group(1)), status.group(2).decode("latin-1"))
        if status and status.group(1)[:1] == b"3":
            where = re.search(rb"(?im)^location:\s*(\S+)", head)
            target = shown_url(where.group(1).decode("latin-1")) if where else "another address"
            raise self.gateway.refuse(SourceRefused(
                f"the RTSP server redirected ({status.group(1).decode()}) to {target}; RTSP redirects "
                "are not followed (FFmpeg would make that connection itself): submit that address"))


def _pump(client: socket.socket, upstream: socket.socket, from_upstream: Callable[[bytes], bytes],
          closed: threading.Event) -> None:
    """Forward both ways until either side ends; one thread, so a TLS upstream is only
    ever used from here."""
    for sock in (client, upstream):
        sock.settimeout(30.0)
    while not closed.is_set():
        pending = isinstance(upstream, ssl.SSLSocket) and upstream.pending()
        ready = [upstream] if pending else select.select([client, upstream], [], [], 0.5)[0]
        for sock in ready:
            data = _recv(sock)
            if data is None:
                continue
            if not data:
                return
            if sock is upstream:
                client.sendall(from_upstream(data))
            else:
                upstream.sendall(data)


def _recv(sock: socket.socket) -> bytes | None:
    """What a socket that select() found readable holds: None when it was only TLS
    records that carry no data (a session ticket), which a blocking read would wait past."""
    if not isinstance(sock, ssl.SSLSocket):
        return sock.recv(65536)
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(65536)
    except ssl.SSLWantReadError:
        return None
    finally:
        sock.settimeout(timeout)


def _with_netloc(url: str, host_port: str) -> str:
    """``url`` with its host and port replaced (credentials, path and query kept)."""
    scheme, _, rest = url.partition("://")
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    userinfo = netloc.rpartition("@")[0]
    return f"{scheme}://{userinfo + '@' if userinfo else ''}{host_port}{tail}"


def _host_port(address: Address, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
