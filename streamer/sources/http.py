"""HTTP and HTTPS sources (MPEG-TS, HLS) fetched the network policy's way.

FFmpeg opens nothing itself: ``av.open`` is given :attr:`~streamer.sources.gateway.Route.io_open`,
through which FFmpeg asks for the stream and for everything a demuxer opens on its behalf
(HLS variant playlists, reloads, segments, keys), and :class:`HttpFetcher` fetches each
one: one lookup, every address checked, a connection to a checked address (TLS with the
name as SNI), redirects followed here (at most :data:`MAX_REDIRECTS`), each hop checked
the same way. Only ``http`` and ``https`` URLs are fetched; AES-encrypted HLS (FFmpeg's
``crypto+`` opens) is refused, because FFmpeg would fetch its keys and segments itself.
Why every connection goes through a :class:`~streamer.sources.gateway.Gateway` is said there.
"""
from __future__ import annotations

import http.client
import socket
import threading
import urllib.error
import urllib.request
from typing import Callable
from urllib.parse import unquote, urljoin, urlsplit

from streamer.sources.gateway import Gateway, Route, close_socket, in_words, shown_url, tls
from streamer.sources.netpolicy import NetworkRefused
from streamer.sources.urls import SourceRefused, SourceSpec

MAX_REDIRECTS = 5
_AVIO_FLAG_WRITE = 2
_USER_AGENT = "facestream"
# The HLS demuxer's connection reuse expects FFmpeg's own HTTP client under the files it
# opened (it asserts, and aborts the process, without one).
_HLS_OWN_IO = {"http_persistent": "0", "http_multiple": "0"}


def http_route(gateway: Gateway, spec: SourceSpec, open_timeout_s: float, read_timeout_s: float) -> Route:
    """One attempt at an HTTP(S) source: nothing is connected until FFmpeg asks through
    ``io_open``; connections wait ``open_timeout_s`` to be made, reads ``read_timeout_s``."""
    fetcher = HttpFetcher(gateway, spec.target, open_timeout_s, read_timeout_s)
    return Route(spec.target, options=dict(_HLS_OWN_IO), io_open=fetcher.io_open, close=fetcher.close)


class HttpFetcher:
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
                e = NetworkRefused(f"the server redirected to {shown_url(self.redirected_to)}: {e}")
            elif _without_userinfo(url) != _without_userinfo(self.main_url):
                e = NetworkRefused(f"the stream asked for {shown_url(url)}: {e}")
            raise self.gateway.refuse(e) from None
        except urllib.error.HTTPError as e:
            why = f"server returned {e.code} {e.reason}"
            e.close()
            self.gateway.failed(why)
            if _without_userinfo(url) == _without_userinfo(self.main_url):
                # the stream's own answer (a segment's 404 is a live playlist moving on)
                self.gateway.answered(e.code, str(e.reason))
            raise OSError(why) from None
        except urllib.error.URLError as e:
            reason = e.reason
            why = in_words(reason) if isinstance(reason, OSError) else str(reason)
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

    fetcher: HttpFetcher

    def connect(self) -> None:
        self.sock = self.fetcher.socket(self.host, self.port)


class _PolicyTLSConnection(http.client.HTTPSConnection):
    fetcher: HttpFetcher

    def connect(self) -> None:
        self.sock = tls(self.fetcher.socket(self.host, self.port), self.host)


class _PolicyHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, fetcher: HttpFetcher) -> None:
        super().__init__()
        self.connection: Callable[..., http.client.HTTPConnection] = type(
            "Connection", (_PolicyConnection,), {"fetcher": fetcher})

    def http_open(self, req):
        return self.do_open(self.connection, req)


class _PolicyHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, fetcher: HttpFetcher) -> None:
        super().__init__()
        self.connection: Callable[..., http.client.HTTPConnection] = type(
            "TLSConnection", (_PolicyTLSConnection,), {"fetcher": fetcher})

    def https_open(self, req):
        return self.do_open(self.connection, req)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Redirects to http(s) only, at most :data:`MAX_REDIRECTS`; the target connects
    through the same handlers, so it is checked like the first hop."""

    max_redirections = MAX_REDIRECTS
    max_repeats = 2

    def __init__(self, fetcher: HttpFetcher) -> None:
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
                f"a redirect to {shown_url(newurl)} was refused: only plain http(s) URLs are followed"))

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


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
