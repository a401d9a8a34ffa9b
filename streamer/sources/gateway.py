"""Where a live source's connections are made: each one to an address the network
policy (:mod:`streamer.sources.netpolicy`) has just checked, never by FFmpeg from a name.

Checking a URL when it is submitted is not enough: the name can resolve elsewhere by
the time it is opened (DNS rebinding), an HTTP server can redirect, an HLS playlist
names other hosts for its segments and keys, and a stream reconnects. So a
:class:`Gateway` sits between FFmpeg and the network for every connection attempt, and
each kind of source makes its :class:`Route` through it:

- **HTTP and HTTPS** (MPEG-TS, HLS, :mod:`streamer.sources.http`): FFmpeg opens nothing
  itself; every URL it asks for through :attr:`Route.io_open` is fetched here, redirects
  and HLS segments included, each over a connection to a checked address.
- **RTSP** (:mod:`streamer.sources.rtsp`): FFmpeg's RTSP client cannot be handed a socket,
  so the gateway connects to a checked address first and FFmpeg is pointed at a relay on
  loopback that forwards to it, refusing the redirects FFmpeg would follow on its own.

Certificates are not verified, as FFmpeg does not verify them by default: the policy is
about *where* a source connects. A refusal (:class:`~streamer.sources.urls.SourceRefused`) is
kept in :attr:`Gateway.refusal` for the source to fail with, since FFmpeg reports a
refused fetch only as an I/O error (and skips a refused HLS segment); the last failed
onward connection is kept in :attr:`Gateway.error` in words, for the same reason, and a
server's answer that would come back on every retry (a 404 for the stream, wrong
credentials) in :attr:`Gateway.rejection`, so that the source fails at once with it.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Callable

from streamer.sources.frames import FINAL_STATUSES
from streamer.sources.netpolicy import Address, NetworkPolicy, Resolver, connect, system_resolver
from streamer.sources.urls import SourceRefused, redact

log = logging.getLogger(__name__)


@dataclass
class Route:
    """How FFmpeg opens one connection attempt: ``url`` (credentials kept: it is opened,
    never shown), extra ``options``, the ``io_open`` callback for ``av.open`` (HTTP), and
    ``close`` to call when the attempt is over."""

    url: str = field(repr=False)
    options: dict[str, str] = field(default_factory=dict)
    io_open: Callable | None = None
    close: Callable[[], None] = lambda: None


class Gateway:
    """The connections of one live source; see the module doc. Thread-safe."""

    def __init__(self, policy: NetworkPolicy, resolve: Resolver = system_resolver) -> None:
        self.policy = policy
        self.resolve = resolve
        self._lock = threading.Lock()
        self._refusal: SourceRefused | None = None
        self._error: str | None = None
        self._rejection: str | None = None
        self._active: Route | None = None
        self._closed = False

    @property
    def refusal(self) -> SourceRefused | None:
        """What the policy (or the gateway) refused during the current attempt."""
        return self._refusal

    @property
    def error(self) -> str | None:
        """Why the last onward connection of the current attempt failed, in words."""
        return self._error

    @property
    def rejection(self) -> str | None:
        """The server's last answer for the stream itself in this attempt ("404 Not Found"),
        when it is one that every retry would get (:data:`~streamer.sources.frames.FINAL_STATUSES`)."""
        return self._rejection

    def answered(self, status: int, reason: str) -> None:
        """Note the server's answer for the stream itself: a final one is kept, any other
        forgets it (an RTSP 401 before the credentials went along, then a 200)."""
        shown = "".join(c for c in reason if c.isprintable())[:100]   # the server's words, in a message
        with self._lock:
            self._rejection = f"{status} {shown}".strip() if status in FINAL_STATUSES else None

    def check(self) -> None:
        """Raise the attempt's refusal, if any (FFmpeg only saw an I/O error)."""
        if self._refusal is not None:
            raise self._refusal

    def attempt(self, open_route: Callable[[], Route]) -> Route:
        """Start one connection attempt: the last one's refusal and error are forgotten,
        then ``open_route`` makes the route (:func:`~streamer.sources.http.http_route`,
        :func:`~streamer.sources.rtsp.rtsp_route`; RTSP connects there already, so a refused
        or unreachable camera raises). It is kept so that :meth:`close` can end it."""
        with self._lock:
            self._refusal, self._error, self._rejection = None, None, None
        route = open_route()
        with self._lock:
            closed, self._active = self._closed, route
        if closed:
            route.close()
            raise OSError("the source is closed")
        return route

    def close(self) -> None:
        """End the current attempt's connections (from any thread) and refuse new ones."""
        with self._lock:
            self._closed, active = True, self._active
        if active is not None:
            active.close()

    # -- for the fetcher and the relay --------------------------------------------------

    def open_socket(self, host: str, port: int, timeout_s: float) -> socket.socket:
        """A TCP connection to ``host`` made the policy's way (a refusal raises
        :class:`NetworkRefused`, for the caller to record with what led there)."""
        return self.connect(self.addresses(host, port), port, timeout_s)

    def refuse(self, refusal: SourceRefused) -> SourceRefused:
        """Record ``refusal`` as the attempt's (the first one stands) and hand it back to raise."""
        with self._lock:
            if self._refusal is None:
                self._refusal = refusal
        log.warning("source connection refused: %s", refusal)
        return refusal

    def addresses(self, host: str, port: int) -> list[Address]:
        """The policy's addresses for ``host``: one lookup, every answer checked. A
        refusal is the caller's to record (it knows what led there)."""
        try:
            return self.policy.addresses(host, port, self.resolve)
        except OSError as e:
            why = f"{host} does not resolve ({in_words(e)})"
            self.failed(why)
            raise OSError(why) from None

    def connect(self, addresses: list[Address], port: int, timeout_s: float) -> socket.socket:
        """A TCP connection to the first of ``addresses`` that answers; a failure is noted."""
        try:
            return connect(addresses, port, timeout_s)
        except OSError as e:
            self.failed(in_words(e))
            raise

    def failed(self, why: str | None) -> None:
        """Note why an onward connection failed (None: the last one worked)."""
        with self._lock:
            self._error = why


def tls(sock: socket.socket, host: str) -> ssl.SSLSocket:
    """TLS on a connected socket: the name as SNI (none for an address); certificates
    unverified, as FFmpeg's own TLS does by default."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        ipaddress.ip_address(host)
        name = None
    except ValueError:
        name = host
    try:
        return context.wrap_socket(sock, server_hostname=name)
    except OSError:
        sock.close()
        raise


def shown_url(url: str) -> str:
    """``url`` as a message may name it: credentials redacted, cut to 200 characters."""
    shown = redact(url)
    return shown if len(shown) <= 200 else shown[:200] + "..."


def in_words(e: OSError) -> str:
    """Why a connection failed, as a message says it (the OS's words where it gave some)."""
    return e.strerror or str(e) or type(e).__name__


def close_socket(sock: socket.socket) -> None:
    """Shut a socket down both ways and close it, whatever state it is in."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
