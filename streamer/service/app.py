"""The REST API as a Ray Serve application (``streamer.service.app:build_app``).

    POST   /streams        {url, name?, fps?, options?}  -> 201 {id, ...status}
    GET    /streams                                      -> 200 [status, ...]
    GET    /streams/{id}                                 -> 200 status
    DELETE /streams/{id}   an active stream: stop, flush sinks, final event -> 200 {...status, removed: false};
                           a finished one (ended, stopped, failed): out of the list, its
                           name free, its records kept until the name is used again
                                                         -> 200 {...status, removed: true}
    POST   /streams/{id}/restart   a stopped or failed stream again: same id and options, a new
                           run after the records it has, a `restarted` event -> 200 status
                           (409 not_restartable while it is active or once it ended)
    GET    /healthz                                      -> 200 {status: ok, ...} (no token needed;
                                                            paths and addresses only with it)
    GET    /metrics        Prometheus text (streamer.service.metrics)
    GET    /docs           Swagger UI, served without a CDN; GET /openapi.json (streamer.service.docs)

Every error is JSON, ``{"error": {"code", "message"}}``, with a 4xx status for what the
client got wrong (400 bad request, 401 no or wrong token, 404 unknown id or route, 405,
409 name taken or not restartable, 413 body too large, 429 stream limit) and 503 when a dependency is down.
Bodies are validated strictly: an unknown field is an error, not ignored, because a
misspelt option silently ignored is a wrong result the user never hears about.

The deployment holds no state; it forwards to the named :class:`StreamManager` actor,
whose answers are :class:`~streamer.pipeline.status.StreamStatus` values: their ``to_json()`` is the
status body.
(No ``from __future__ import annotations`` here: Serve's class-based routes need the
request model as a real annotation, or FastAPI reads the body as a query parameter.)
"""

import json
from typing import Any

import ray
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from streamer.config import load_config
from streamer.pipeline.ray_errors import root_cause
from streamer.pipeline.runtime import keep_serve_replicas_on_loopback
from streamer.service import manager as manager_mod
from streamer.service.auth import TOKEN_ENV, api_token, open_api_refusal, token_ok  # noqa: F401 (TOKEN_ENV re-exported)
from streamer.service.docs import OPENAPI_PATH, add_docs, asks_for_basic
from streamer.service.errors import ApiError
from streamer.service.metrics import CONTENT_TYPE, render
from streamer.sources.netpolicy import beyond_loopback
from streamer.sources.urls import Transport


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transport: Transport = Transport.TCP             # RTSP transport
    every: int | None = Field(None, ge=1, le=10_000)  # keep every k-th frame


class StreamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=4096)
    name: str | None = Field(None, min_length=1, max_length=64)
    fps: float | None = Field(None, gt=0, le=240)
    options: StreamOptions | None = None


keep_serve_replicas_on_loopback()   # this module is what a replica imports first: a private cluster stays on loopback

# FastAPI's own /docs and /redoc load their scripts from a CDN: streamer.service.docs serves /docs instead
api = FastAPI(title="facestream", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=OPENAPI_PATH)


@api.exception_handler(ApiError)
async def _api_error(request: Request, e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status)


@api.exception_handler(RequestValidationError)
async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
    """A body that is not JSON is said so, with the parser's words and where it stopped
    (FastAPI's own message is the offset alone: "19: JSON decode error"); a JSON body
    that does not fit the request names each field and what is wrong with it."""
    for err in e.errors():
        if err.get("type") == "json_invalid":
            return JSONResponse(ApiError(400, "bad_json", _not_json(err, e.body)).body(), status_code=400)
    problems = []
    for err in e.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return JSONResponse(ApiError(400, "bad_request", "; ".join(problems)).body(), status_code=400)


def _not_json(err: dict, doc: Any) -> str:
    """"the body is not valid JSON: Expecting ',' delimiter at line 1 column 20"."""
    reason = str((err.get("ctx") or {}).get("error") or "it does not parse")
    pos = next((p for p in err.get("loc", ()) if isinstance(p, int)), None)
    if isinstance(doc, (bytes, bytearray)):
        doc = bytes(doc).decode("utf-8", "replace")
    if pos is None or not isinstance(doc, str):
        return f"the body is not valid JSON: {reason}"
    where = json.JSONDecodeError(reason, doc, min(pos, len(doc)))
    return f"the body is not valid JSON: {reason} at line {where.lineno} column {where.colno}"


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
    return JSONResponse(ApiError(e.status_code, code, str(e.detail)).body(), status_code=e.status_code)


_OPEN_PATHS = ("/healthz",)
add_docs(api, _OPEN_PATHS)


class _Guard:
    """ASGI middleware run before any routing or parsing: the bearer token first (an
    unauthenticated client learns nothing, not even whether its JSON parses), then the
    body size, counted as it arrives — ``Content-Length`` can be absent (chunked) or
    wrong, so the bytes themselves are counted and at most ``max_body_bytes`` are held."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        # the app as served (Serve's replica holds its own copy of ``api``): its state
        # is what the deployment's __init__ set
        state = scope["app"].state
        token = getattr(state, "token", None)
        if token is not None and scope["path"] not in _OPEN_PATHS and not token_ok(headers, token):
            # a browser opening /docs gets its login prompt (the token as the password)
            challenge = 'Basic realm="facestream"' if asks_for_basic(scope["path"]) else 'Bearer realm="facestream"'
            return await _send_error(send, ApiError(401, "unauthorized", "missing or wrong bearer token"),
                                     [(b"www-authenticate", challenge.encode())])
        limit = getattr(state, "max_body_bytes", 65536)
        too_large = ApiError(413, "body_too_large", f"request bodies are limited to {limit} bytes")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await _send_error(send, too_large)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                return await _send_error(send, too_large)
        delivered = False

        async def replay():
            nonlocal delivered
            if delivered:
                return await receive()   # after the body: disconnect notices
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


async def _send_error(send, e: ApiError, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(e.body()).encode()
    await send({"type": "http.response.start", "status": e.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


api.add_middleware(_Guard)


async def _call(ref) -> Any:
    """Await a manager call; its ApiError comes back as it was raised."""
    try:
        return await ref
    except ray.exceptions.RayTaskError as e:
        cause = root_cause(e)
        if isinstance(cause, ApiError):
            raise cause from None
        raise ApiError(500, "internal", f"{type(cause).__name__}: {cause}") from None
    except ray.exceptions.RayActorError:
        raise ApiError(503, "manager_unavailable", "the stream manager is not running") from None


def _serve_http_host() -> str:
    """The host Serve's HTTP proxies listen on; "0.0.0.0" (exposed) if it cannot be told.
    (Defined before the deployment: Serve ships the class with what it refers to then.)"""
    try:
        from ray.serve.context import _get_global_client

        return str(_get_global_client().http_config.host)  # type: ignore[union-attr]  # None: caught below
    except Exception:
        return "0.0.0.0"


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class FacestreamAPI:
    def __init__(self, config: str | None = None, overrides: dict | None = None):
        cfg = load_config(config, overrides)
        # Exposed: where Serve listens, or where the config says the service listens,
        # reaches beyond loopback (either one is enough; unknown counts as exposed).
        http_host = _serve_http_host()
        exposed = beyond_loopback(cfg.service.host) or beyond_loopback(http_host)
        token = api_token(cfg)
        refusal = open_api_refusal(cfg, http_host, exposed, token)
        if refusal is not None:
            raise RuntimeError(refusal)       # the deployment fails, saying why
        api.state.token = token
        # with no token, only a loopback-only service tells its paths and addresses
        api.state.details_open = token is None and not exposed
        api.state.max_body_bytes = cfg.service.max_body_bytes
        self.manager = manager_mod.get_or_start(cfg, exposed)
        ray.get(self.manager.health.remote())  # a manager that cannot start fails the deploy
        ray.get(self.manager.restore.remote())  # the streams a previous service left (once per manager)

    @api.post("/streams", status_code=201)
    async def create(self, body: StreamRequest) -> dict:
        options = body.options.model_dump(exclude_none=True) if body.options else {}
        status = await _call(self.manager.create.remote(body.url, body.name, body.fps, options))
        return status.to_json()

    @api.get("/streams")
    async def list_streams(self) -> list:
        return [s.to_json() for s in await _call(self.manager.list.remote())]

    @api.get("/streams/{stream_id}")
    async def get(self, stream_id: str) -> dict:
        return (await _call(self.manager.get.remote(stream_id))).to_json()

    @api.delete("/streams/{stream_id}")
    async def delete(self, stream_id: str) -> dict:
        """Stop an active stream (it stays listed, `removed: false`); remove a finished one
        from the list, freeing its name (`removed: true`; its records stay until the name is
        used again)."""
        deleted = await _call(self.manager.delete.remote(stream_id))
        return {**deleted.status.to_json(), "removed": deleted.removed}

    @api.post("/streams/{stream_id}/restart")
    async def restart(self, stream_id: str) -> dict:
        """Start a stopped or failed stream again: same id and options, a new run that
        carries on after its records (409 while it is active or once it ended)."""
        return (await _call(self.manager.restart.remote(stream_id))).to_json()

    @api.get("/healthz")
    async def healthz(self, request: Request) -> dict:
        """Open to probes, and telling them nothing to aim at: the Redis address, the
        media root and the output directory only to a caller with the token (or to
        anyone on a loopback-only service without one)."""
        token = api.state.token
        headers = {k.lower(): v for k, v in request.headers.items()}
        detailed = api.state.details_open or (token is not None and token_ok(headers, token))
        return await _call(self.manager.health.remote(detailed))

    @api.get("/metrics", response_class=PlainTextResponse)
    async def metrics(self) -> PlainTextResponse:
        text = render(await _call(self.manager.metrics.remote()))
        return PlainTextResponse(text, media_type=CONTENT_TYPE)


def build_app(args: dict | None = None) -> serve.Application:
    """Serve's application builder: ``args`` may hold ``config`` (a ray_config.yaml path)
    and ``overrides`` (a nested dict like the YAML)."""
    args = args or {}
    unknown = set(args) - {"config", "overrides"}
    if unknown:
        raise ValueError(f"unknown application args: {', '.join(sorted(unknown))} (known: config, overrides)")
    return FacestreamAPI.bind(args.get("config"), args.get("overrides"))  # type: ignore[attr-defined]  # serve.deployment's
