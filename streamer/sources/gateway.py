"""Where a live source's connections are made: each one to an address the network
policy (:mod:`streamer.sources.netpolicy`) has just checked, never by FFmpeg from a name.

Checking a URL when it is submitted is not enough: the name can resolve elsewhere by
the time it is opened (DNS rebinding), an HTTP server can redirect, an HLS playlist
names other hosts for its segments and keys, and a stream reconnects. So a
:class:`Gateway` sits between FFmpeg and the network for every connection attempt:

- **HTTP and HTTPS** (MPEG-TS, HLS): FFmpeg opens nothing itself. ``av.open`` is given
  :attr:`Route.io_open`, through which FFmpeg asks for the stream and for everything a
  demuxer opens on its behalf (HLS variant playlists, reloads, segments, keys), and
  :class:`_HttpFetcher` fetches each one: one lookup, every address checked, a
  connection to a checked address (TLS with the name as SNI), redirects followed here
  (at most :data:`MAX_REDIRECTS`), each hop checked the same way. Only ``http`` and
  ``https`` URLs are fetched; AES-encrypted HLS (FFmpeg's ``crypto+`` opens) is refused,
  because FFmpeg would fetch its keys and segments itself.
- **RTSP**: FFmpeg's RTSP client makes its own connection and cannot be handed a socket,
  so the gateway connects to a checked address first and FFmpeg is pointed at a
  one-connection relay on loopback (:class:`_RtspRelay`) that forwards to it. The relay
  reads the server's replies: a redirect (3xx) is refused, since FFmpeg would follow it
  with a connection of its own. RTP comes interleaved on the checked connection (TCP).
  ``rtsps://`` is TLS from the relay to the camera (name as SNI). RTSP over UDP is
  refused unless ``source.rtsp_udp`` is set, because the server names the endpoints RTP
  comes from and RTCP goes to; when it is set FFmpeg connects to the checked address
  itself (an IP literal: no lookup) and those endpoints, and redirects, are outside the
  policy.

Certificates are not verified, as FFmpeg does not verify them by default: the policy is
about *where* a source connects. A refusal (:class:`~streamer.sources.urls.SourceRefused`) is
kept in :attr:`Gateway.refusal` for the source to fail with, since FFmpeg reports a
refused fetch only as an I/O error (and skips a refused HLS segment); the last failed
onward connection is kept in :attr:`Gateway.error` in words, for the same reason.
"""
from __future__ import annotations

import http.client
import ipaddress
import logging
import re
import select
import socket
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import unquote, urljoin, urlsplit

from streamer.sources.netpolicy import DEFAULT_PORTS, NetworkPolicy, NetworkRefused, Resolver, connect, system_resolver
from streamer.sources.urls import SourceRefused, SourceSpec, redact

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
_AVIO_FLAG_WRITE = 2
_USER_AGENT = "facestream"
_MAX_RTSP_HEAD = 65536
_RTSP_STATUS = re.compile(rb"^RTSP/\d\.\d (\d{3})")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_HLS_OWN_IO = {"http_persistent": "0", "http_multiple": "0"}


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

    def check(self) -> None:
        """Raise the attempt's refusal, if any (FFmpeg only saw an I/O error)."""
        if self._refusal is not None:
            raise self._refusal

    def route(self, spec: SourceSpec, transport: str = "tcp", open_timeout_s: float = 10.0,
              read_timeout_s: float = 12.0) -> Route:
        """Prepare one connection attempt to ``spec``; RTSP connects here already, so a
        refused or unreachable camera raises (:class:`NetworkRefused`, ``OSError``).
        Connections wait ``open_timeout_s`` to be made, reads ``read_timeout_s``."""
        with self._lock:
            self._refusal, self._error = None, None
        route = self._route(spec, transport, open_timeout_s, read_timeout_s)
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

    def _route(self, spec: SourceSpec, transport: str, open_timeout_s: float, read_timeout_s: float) -> Route:
        if spec.kind == "http":
            fetcher = _HttpFetcher(self, spec.target, open_timeout_s, read_timeout_s)
            # The HLS demuxer's connection reuse expects FFmpeg's own HTTP client under
            # the files it opened (it asserts, and aborts the process, without one).
            return Route(spec.target, options=dict(_HLS_OWN_IO), io_open=fetcher.io_open, close=fetcher.close)
        if spec.kind != "rtsp":
            raise ValueError(f"the gateway routes rtsp and http sources, not {spec.kind!r}")
        parts = urlsplit(spec.target)
        host, port = parts.hostname or "", parts.port or DEFAULT_PORTS[parts.scheme]
        try:
            addresses = self._checked(host, port)
        except NetworkRefused as e:
            raise self.refuse(e) from None
        if transport == "udp":
            return Route(_with_netloc(spec.target, _host_port(addresses[0], port)))
        upstream = self._connect(addresses, port, open_timeout_s)
        if parts.scheme == "rtsps":
            upstream = _tls(upstream, host)
        relay = _RtspRelay(upstream, self, open_timeout_s).start()
        url = _with_netloc(spec.target, f"127.0.0.1:{relay.port}").replace("rtsps://", "rtsp://", 1)
        return Route(url, close=relay.close)

    # -- for the fetcher and the relay --------------------------------------------------

    def open_socket(self, host: str, port: int, timeout_s: float) -> socket.socket:
        """A TCP connection to ``host`` made the policy's way (a refusal raises
        :class:`NetworkRefused`, for the caller to record with what led there)."""
        return self._connect(self._checked(host, port), port, timeout_s)

    def refuse(self, refusal: SourceRefused) -> SourceRefused:
        with self._lock:
            if self._refusal is None:
                self._refusal = refusal
        log.warning("source connection refused: %s", refusal)
        return refusal

    def _checked(self, host: str, port: int) -> list:
        """The policy's addresses for ``host``: one lookup, every answer checked. A
        refusal is the caller's to record (it knows what led there)."""
        try:
            return self.policy.addresses(host, port, self.resolve)
        except OSError as e:
            why = f"{host} does not resolve ({_words(e)})"
            self.failed(why)
            raise OSError(why) from None

    def _connect(self, addresses: list, port: int, timeout_s: float) -> socket.socket:
        try:
            return connect(addresses, port, timeout_s)
        except OSError as e:
            self.failed(_words(e))
            raise

    def failed(self, why: str | None) -> None:
        """Note why an onward connection failed (None: the last one worked)."""
        with self._lock:
            self._error = why


class _HttpFetcher:
    """FFmpeg's ``io_open`` for one HTTP(S) attempt: every URL fetched the policy's way.

    urllib does the HTTP (redirects, Basic and Digest challenges, chunked bodies) with
    an opener holding only the handlers below: no proxy from the environment, no other
    scheme, and connections made by :meth:`Gateway.open_socket`.
    """

    def __init__(self, gateway: Gateway, main_url: str, open_timeout_s: float, read_timeout_s: float) -> None:
        self.gateway = gateway
        self.main_url = main_url
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        self.opener = urllib.request.OpenerDirector()
        for handler in (_PolicyHTTPHandler(self), _PolicyHTTPSHandler(self), _RedirectHandler(self),
                        urllib.request.HTTPBasicAuthHandler(self.passwords),
                        urllib.request.HTTPDigestAuthHandler(self.passwords),
                        urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor(),
                        urllib.request.UnknownHandler()):
            self.opener.add_handler(handler)
        self.redirected_to: str | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False

    def io_open(self, url: str, flags: int, options: dict) -> "_Body":
        if flags & _AVIO_FLAG_WRITE:
            raise self.gateway.refuse(SourceRefused("a source may not open anything for writing"))
        scheme = url.partition(":")[0]
        if scheme not in ("http", "https"):
            what = "AES-encrypted HLS" if scheme.startswith("crypto") else f"a '{scheme[:16]}:' URL"
            raise self.gateway.refuse(SourceRefused(
                f"the stream asked to open {what}, which network sources may not do"))
        return self.fetch(url)

    def fetch(self, url: str) -> "_Body":
        """GET ``url`` (redirects followed, each hop connecting to a checked address)."""
        parts = urlsplit(url)
        if "@" in parts.netloc:   # credentials go to the password manager, not the wire
            userinfo, _, hostport = parts.netloc.rpartition("@")
            user, _, password = userinfo.partition(":")
            url = parts._replace(netloc=hostport).geturl()
            self.passwords.add_password(None, url, unquote(user), unquote(password))
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, "Accept": "*/*",
                                                       "Connection": "close"})
        self.redirected_to = None
        try:
            response = self.opener.open(request, timeout=self.open_timeout_s)
        except NetworkRefused as e:
            if self.redirected_to is not None:
                e = NetworkRefused(f"the server redirected to {_shown(self.redirected_to)}: {e}")
            elif _without_userinfo(url) != _without_userinfo(self.main_url):
                e = NetworkRefused(f"the stream asked for {_shown(url)}: {e}")
            raise self.gateway.refuse(e) from None
        except urllib.error.HTTPError as e:
            why = f"server returned {e.code} {e.reason}"
            e.close()
            self.gateway.failed(why)
            raise OSError(why) from None
        except urllib.error.URLError as e:
            reason = e.reason
            why = _words(reason) if isinstance(reason, OSError) else str(reason)
            self.gateway.failed(why)
            raise OSError(why) from None
        self.gateway.failed(None)
        return _Body(url, response)

    def socket(self, host: str, port: int) -> socket.socket:
        """A connection for urllib, made by the gateway; kept so :meth:`close` can end it."""
        sock = self.gateway.open_socket(host, port, self.open_timeout_s)
        sock.settimeout(self.read_timeout_s)
        with self._lock:
            if self._closed:
                close_socket(sock)
                raise OSError("the source is closed")
            self._sockets.append(sock)
        return sock

    def close(self) -> None:
        """End every connection of this attempt, also from another thread: a read
        blocked on one returns at once."""
        with self._lock:
            sockets, self._sockets, self._closed = self._sockets, [], True
        for sock in sockets:
            close_socket(sock)


class _PolicyConnection(http.client.HTTPConnection):
    """An HTTP connection whose socket comes from the gateway (nothing looked up here)."""

    fetcher: _HttpFetcher

    def connect(self) -> None:
        self.sock = self.fetcher.socket(self.host, self.port)


class _PolicyTLSConnection(http.client.HTTPSConnection):
    fetcher: _HttpFetcher

    def connect(self) -> None:
        self.sock = _tls(self.fetcher.socket(self.host, self.port), self.host)


class _PolicyHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, fetcher: _HttpFetcher) -> None:
        super().__init__()
        self.connection = type("Connection", (_PolicyConnection,), {"fetcher": fetcher})

    def http_open(self, req):
        return self.do_open(self.connection, req)


class _PolicyHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, fetcher: _HttpFetcher) -> None:
        super().__init__()
        self.connection = type("TLSConnection", (_PolicyTLSConnection,), {"fetcher": fetcher})

    def https_open(self, req):
        return self.do_open(self.connection, req)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Redirects to http(s) only, at most :data:`MAX_REDIRECTS`; the target connects
    through the same handlers, so it is checked like the first hop."""

    max_redirections = MAX_REDIRECTS
    max_repeats = 2

    def __init__(self, fetcher: _HttpFetcher) -> None:
        self.fetcher = fetcher

    def http_error_302(self, req, fp, code, msg, headers):
        location = headers.get("location") or headers.get("uri")
        if location is not None:   # refused here: urllib's own refusal reads like a fault
            self._check(urljoin(req.full_url, location.strip()))
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def _check(self, newurl: str) -> None:
        parts = urlsplit(newurl)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            raise self.fetcher.gateway.refuse(SourceRefused(
                f"a redirect to {_shown(newurl)} was refused: only plain http(s) URLs are followed"))

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self._check(newurl)
        self.fetcher.redirected_to = newurl
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Body:
    """A response body as the file object PyAV reads: ``read`` returns what has arrived
    (at least one byte, or b'' at the end), so a live stream is not held back."""

    def __init__(self, url: str, response: http.client.HTTPResponse) -> None:
        self.name = url
        self._response = response

    def read(self, size: int = -1) -> bytes:
        return self._response.read1(size if size > 0 else 65536)

    def close(self) -> None:
        self._response.close()


class _RtspRelay:
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

    def start(self) -> "_RtspRelay":
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
        buf = self._buffer + data
        out = []
        while buf:
            if buf[:1] == b"$":                  # interleaved RTP/RTCP: $, channel, length
                if len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[2:4], "big"):
                    break
                size = 4 + int.from_bytes(buf[2:4], "big")
            else:
                end = _BLANK_LINE.search(buf)
                if end is None:
                    if len(buf) > _MAX_RTSP_HEAD:
                        raise self.gateway.refuse(SourceRefused("the RTSP server sent a malformed reply"))
                    break
                head = buf[:end.end()]
                length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
                size = end.end() + (int(length.group(1)) if length else 0)
                if len(buf) < size:
                    break
                status = _RTSP_STATUS.match(head)
                if status and status.group(1)[:1] == b"3":
                    where = re.search(rb"(?im)^location:\s*(\S+)", head)
                    target = _shown(where.group(1).decode("latin-1")) if where else "another address"
                    raise self.gateway.refuse(SourceRefused(
                        f"the RTSP server redirected ({status.group(1).decode()}) to {target}; RTSP redirects "
                        "are not followed (FFmpeg would make that connection itself): submit that address"))
            out.append(buf[:size])
            buf = buf[size:]
        self._buffer = buf
        return b"".join(out)


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


def _tls(sock: socket.socket, host: str) -> ssl.SSLSocket:
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


def _with_netloc(url: str, host_port: str) -> str:
    """``url`` with its host and port replaced (credentials, path and query kept)."""
    scheme, _, rest = url.partition("://")
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    userinfo = netloc.rpartition("@")[0]
    return f"{scheme}://{userinfo + '@' if userinfo else ''}{host_port}{tail}"


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _host_port(address, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def _shown(url: str) -> str:
    shown = redact(url)
    return shown if len(shown) <= 200 else shown[:200] + "..."


def _words(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__


def close_socket(sock: socket.socket) -> None:
    """Shut a socket down both ways and close it, whatever state it is in."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
