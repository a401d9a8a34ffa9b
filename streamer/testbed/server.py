"""The threaded TCP server under both test-bed protocols: one thread per client, one stop.

Threads, not asyncio: each client costs a thread, which is fine for the handful of
clients a test or a demo has. :meth:`ThreadedServer.stop` closes every socket at once, so
clients see the connection drop, and the port can be bound again straight away
(``SO_REUSEADDR``): tests restart a server on the same port to exercise reconnects.
Given ``credentials``, both protocols ask for them (Basic) and answer 401 to a request
without them or with wrong ones, as a camera with a password does.
"""
from __future__ import annotations

import base64
import logging
import os
import socket
import threading
from typing import Callable, Self

import av

from streamer.sources.gateway import close_socket
from streamer.testbed.publisher import Publisher

log = logging.getLogger(__name__)

MAX_LINE = 8192               # longest request or header line read
_MAX_HEADERS = 64


class ThreadedServer:
    """A listening TCP socket, one thread per client, and a stop that closes everything."""

    path = "/"
    scheme = "tcp"

    def __init__(self, video_path: str | os.PathLike, host: str = "127.0.0.1", port: int = 0,
                 fps: float | None = None, loop: bool = True, replay: bool = False,
                 credentials: tuple[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        self.credentials = credentials
        self._publisher = Publisher(video_path, fps, loop, replay)
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

    def _authorized(self, headers: dict[str, str]) -> bool:
        """Whether a request's headers carry the credentials (always, when none are set)."""
        if self.credentials is None:
            return True
        expected = base64.b64encode(":".join(self.credentials).encode()).decode()
        return headers.get("authorization", "") == f"Basic {expected}"


def read_headers(reader) -> dict[str, str]:
    """The header lines after a request line (RTSP and HTTP alike), names lower-cased."""
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADERS):
        line = reader.readline(MAX_LINE).decode("latin-1").strip()
        if not line:
            return headers
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    raise ValueError("too many header lines")

