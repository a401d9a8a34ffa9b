"""Start and stop the live view's web server beside the API (``facestream serve``).

uvicorn runs the Starlette app (:mod:`.app`) on a thread of the serving process, on a
socket bound here first, so that a port already taken is a :class:`ViewError` at start,
one line, rather than an exit from inside the thread.
"""
from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn

from streamer.config import Config
from streamer.service.auth import api_token
from streamer.service.client import ApiClient
from streamer.service.server import ServeError
from streamer.view.app import ViewContext, build_app

_STOP_GRACE_S = 2


class ViewError(ServeError):
    """The live view could not start (its port is taken): the service does not start either."""


def view_port(cfg: Config) -> int | None:
    """The live view's port: ``view.port``, else the API's + 1; None when turned off (0)."""
    if cfg.view.port == 0:
        return None
    return cfg.view.port if cfg.view.port is not None else cfg.service.port + 1


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (IPv4 or IPv6), or :class:`ViewError`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ViewError(f"the live view cannot listen on {host}:{port}: {e.strerror} "
                        "(set view.port, or 0 for no live view)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class ViewServer:
    """The live view: its port is bound when made (so a taken port fails before anything
    else starts); :meth:`start` serves it on its own thread until :meth:`stop`."""

    def __init__(self, cfg: Config, port: int) -> None:
        self.cfg = cfg
        self._socket = bind(cfg.service.host, port)
        self.port = self._socket.getsockname()[1]
        self.url = f"http://{_client_host(cfg.service.host)}:{self.port}/"
        self._ctx: ViewContext | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="facestream-view", daemon=True)

    def start(self, api_url: str, redis_url: str) -> ViewServer:
        """Serve the view of the API at ``api_url``, whose streams write to ``redis_url``."""
        token = api_token(self.cfg)
        self._ctx = ViewContext(self.cfg, ApiClient(api_url, token=token or "", timeout_s=30.0), token, redis_url)
        config = uvicorn.Config(build_app(self._ctx), log_level="warning", access_log=False,
                                timeout_graceful_shutdown=_STOP_GRACE_S, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self._server is not None
        server = self._server

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve(sockets=[self._socket])
        asyncio.run(serve())

    def stop(self) -> None:
        """End every viewer's stream, then the server; returns when it is down."""
        loop, ctx = self._loop, self._ctx
        if loop is not None and ctx is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(ctx.stopping.set)
            except RuntimeError:
                pass   # the loop ended meanwhile
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(_STOP_GRACE_S + 10)
        self._socket.close()


def open_view(cfg: Config) -> ViewServer | None:
    """The live view's server with its port bound, not yet serving; None when
    ``view.port`` is 0. Raises :class:`ViewError` when the port is taken."""
    port = view_port(cfg)
    return ViewServer(cfg, port) if port is not None else None
