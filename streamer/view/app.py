"""The live view's web application (Starlette, served by uvicorn: :mod:`.server`).

    GET  /                               the streams page (static/index.html)
    GET  /streams/{id}                   one stream: live frames and curves (static/stream.html)
    GET  /login, POST /login             the token, once, for a cookie (:mod:`.access`)
    GET  /api/streams                    the API's stream list, as JSON
    GET  /api/streams/events             the same as Server-Sent Events, every ``_LIST_EVERY_S``
    POST /api/streams   {url, name?}     submit, through the API
    DELETE /api/streams/{id}             stop, through the API
    GET  /api/streams/{id}/frames.mjpg   annotated frames (:mod:`.frames`)
    GET  /api/streams/{id}/frame.jpg     the newest annotated frame, once (404 before there is one)
    GET  /api/streams/{id}/curves        Server-Sent Events: curve points (:mod:`.curves`)

Errors are the API's: JSON ``{"error": {"code", "message"}}``. Any page also takes
``?token=`` and, the token right, sets the cookie and sends the browser on without it in
the address. Changes (POST, DELETE) must come as JSON or from a script with the bearer
header: a form on another site cannot send either, and the cookie is SameSite=Strict.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qs, urlencode

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from streamer.config import Config
from streamer.data.redis_codec import stream_key
from streamer.service.client import ApiClient, ApiClientError
from streamer.view import access, curves, frames

_LIST_EVERY_S = 1.0
_CURVES_EVERY_S = 0.5
_MAX_BODY = 8192


@dataclass
class ViewContext:
    """What the view's routes share: the config, the API it is a client of, the token
    (None: open), the Redis the streams write to, and the event that ends every
    long-lived response when the server stops."""

    cfg: Config
    api: ApiClient
    token: str | None
    redis_url: str
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _redis: aioredis.Redis | None = None

    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            timeout = self.cfg.redis.connect_timeout_s
            self._redis = aioredis.Redis.from_url(self.redis_url, socket_timeout=timeout,
                                                  socket_connect_timeout=timeout)
        return self._redis


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _page(name: str) -> str:
    return (resources.files("streamer.view") / "static" / name).read_text()


class _Routes:
    """The view's endpoints, over one :class:`ViewContext`."""

    def __init__(self, ctx: ViewContext) -> None:
        self.ctx = ctx

    def guarded(self, handler: Callable[[Request], Awaitable[Response]],
                html: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` for those who hold the token (cookie, bearer header or ``?token=``);
        a page sends others to the login form, the rest answer 401."""
        ctx = self.ctx

        async def endpoint(request: Request) -> Response:
            given = request.query_params.get("token")
            if given is not None:
                if not access.token_matches(ctx.token, given):
                    return self.login_page(request, "That token is not the service's token.", 401)
                rest = {k: v for k, v in request.query_params.items() if k != "token"}
                target = request.url.path + ("?" + urlencode(rest) if rest else "")
                return self.with_cookie(RedirectResponse(target, status_code=303))
            if not access.allowed(ctx.token, dict(request.cookies), dict(request.headers)):
                if html:
                    return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)
                return error(401, "unauthorized", "log in to the live view first (/login) or send the API token")
            return await handler(request)
        return endpoint

    def with_cookie(self, response: Response) -> Response:
        if self.ctx.token is not None:
            response.set_cookie(access.COOKIE, access.cookie_value(self.ctx.token), httponly=True,
                                samesite="strict", path="/")
        return response

    def login_page(self, request: Request, message: str = "", status: int = 200) -> HTMLResponse:
        nxt = access.safe_next(request.query_params.get("next"))
        body = _page("login.html").replace("{{message}}", _escape(message)).replace("{{next}}", _escape(nxt))
        return HTMLResponse(body, status_code=status)

    async def login_form(self, request: Request) -> Response:
        if self.ctx.token is None:
            return RedirectResponse("/", status_code=303)
        return self.login_page(request)

    async def login(self, request: Request) -> Response:
        raw = await request.body()
        if len(raw) > _MAX_BODY:
            return error(413, "body_too_large", f"the login form is larger than {_MAX_BODY} bytes")
        form = parse_qs(raw.decode(errors="replace"))
        nxt = access.safe_next((form.get("next") or ["/"])[0])
        if not access.token_matches(self.ctx.token, (form.get("token") or [""])[0]):
            return self.login_page(request, "That token is not the service's token.", 401)
        return self.with_cookie(RedirectResponse(nxt, status_code=303))

    async def index(self, request: Request) -> Response:
        return HTMLResponse(_page("index.html"))

    async def stream_page(self, request: Request) -> Response:
        return HTMLResponse(_page("stream.html"))

    async def list_streams(self, request: Request) -> Response:
        return await _api(self.ctx.api.streams)

    async def list_events(self, request: Request) -> Response:
        ctx = self.ctx

        async def events() -> AsyncIterator[bytes]:
            while not ctx.stopping.is_set():
                try:
                    body: Any = await run_in_threadpool(ctx.api.streams)
                except ApiClientError as e:
                    body = {"error": {"code": e.code, "message": str(e)}}
                yield _sse(body)
                await _pause(ctx.stopping, _LIST_EVERY_S)
        return _event_stream(events())

    async def submit(self, request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        url, name = body.get("url"), body.get("name") or None
        if not isinstance(url, str) or not url.strip() or not (name is None or isinstance(name, str)):
            return error(400, "bad_request", "give the stream's url (text) and optionally a name (text)")
        return await _api(self.ctx.api.submit, url.strip(), name.strip() if name else None, status=201)

    async def stop(self, request: Request) -> Response:
        if not _scripted(request):
            return error(400, "bad_request", "stop a stream from the page (a JSON request) or with the API token")
        return await _api(self.ctx.api.stop, request.path_params["stream_id"])

    async def mjpeg(self, request: Request) -> Response:
        ctx, sid = self.ctx, request.path_params["stream_id"]
        return StreamingResponse(frames.mjpeg(ctx.redis(), ctx.cfg, sid, ctx.stopping), media_type=frames.MEDIA_TYPE,
                                 headers={"Cache-Control": "no-store"})

    async def one_frame(self, request: Request) -> Response:
        ctx, sid = self.ctx, request.path_params["stream_id"]
        try:
            await frames.watch(ctx.redis(), ctx.cfg, sid)
            frame = await frames.latest(ctx.redis(), ctx.cfg, sid)
        except (RedisError, OSError) as e:
            return error(503, "redis_unreachable", f"cannot read the stream's frames from Redis: {e}")
        if frame is None:
            return error(404, "no_frame", f"stream {sid!r} has sent no frame yet (it is now marked watched: "
                                          "try again in a second) or is not running")
        jpeg = await run_in_threadpool(frames.annotated_jpeg, frame, ctx.cfg)
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def curve_events(self, request: Request) -> Response:
        ctx = self.ctx
        key = stream_key(ctx.cfg.redis.key_prefix, request.path_params["stream_id"])
        client = ctx.redis()

        async def events() -> AsyncIterator[bytes]:
            try:
                points, last = await curves.history(client, key, ctx.cfg.view.history_s)
                yield _sse({"names": curves.names(), "history_s": ctx.cfg.view.history_s,
                            "points": curves.to_json(points)})
                while not ctx.stopping.is_set():
                    await _pause(ctx.stopping, _CURVES_EVERY_S)
                    points, last = await curves.after(client, key, last)
                    if points:
                        yield _sse({"points": curves.to_json(points)})
                    else:
                        yield b": idle\n\n"   # a comment: keeps proxies from closing a quiet stream
            except (RedisError, OSError) as e:   # the browser's EventSource reconnects by itself
                yield f"event: problem\ndata: {json.dumps(f'Redis unreachable: {e}')}\n\n".encode()
        return _event_stream(events())


def build_app(ctx: ViewContext) -> Starlette:
    r = _Routes(ctx)
    routes = [
        Route("/", r.guarded(r.index, html=True)),
        Route("/streams/{stream_id}", r.guarded(r.stream_page, html=True)),
        Route("/login", r.login_form, methods=["GET"]),
        Route("/login", r.login, methods=["POST"]),
        Route("/api/streams", r.guarded(r.list_streams), methods=["GET"]),
        Route("/api/streams", r.guarded(r.submit), methods=["POST"]),
        Route("/api/streams/events", r.guarded(r.list_events), methods=["GET"]),
        Route("/api/streams/{stream_id}", r.guarded(r.stop), methods=["DELETE"]),
        Route("/api/streams/{stream_id}/frames.mjpg", r.guarded(r.mjpeg)),
        Route("/api/streams/{stream_id}/frame.jpg", r.guarded(r.one_frame)),
        Route("/api/streams/{stream_id}/curves", r.guarded(r.curve_events)),
        Mount("/static", StaticFiles(packages=[("streamer.view", "static")]), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, "not_found", f"no such page: {request.url.path}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}")

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})


async def _api(call: Callable[..., Any], *args: Any, status: int = 200) -> Response:
    """One API call (blocking, in a thread) as the view's answer, errors as the API's."""
    try:
        return JSONResponse(await run_in_threadpool(call, *args), status_code=status)
    except ApiClientError as e:
        return error(e.status or 503, e.code, str(e))


def _scripted(request: Request) -> bool:
    """A request no plain HTML form on another site can make: JSON, or the bearer header."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return ctype == "application/json" or request.headers.get("authorization", "").lower().startswith("bearer ")


async def _json_body(request: Request) -> dict | Response:
    if not _scripted(request):
        return error(415, "unsupported_media_type", "send the stream as JSON (Content-Type: application/json)")
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        return error(413, "body_too_large", f"the request body is larger than {_MAX_BODY} bytes")
    try:
        body = json.loads(raw)
    except ValueError as e:
        return error(400, "bad_json", f"the request body is not JSON: {e}")
    if not isinstance(body, dict):
        return error(400, "bad_request", "the request body must be a JSON object {url, name?}")
    return body


def _sse(body: Any) -> bytes:
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


def _event_stream(events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _pause(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when the server stops."""
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except asyncio.TimeoutError:
        pass


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
