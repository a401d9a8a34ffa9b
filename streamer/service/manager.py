"""``StreamManager``: the one actor that owns a service's streams.

The API deployment is stateless and may run as several replicas or be restarted by
Serve; the registry of streams must outlive that, so it lives here, in a named detached
actor that every API replica finds by name. The manager also owns what all streams
share: the model replicas (loaded once, batching crops across streams) and, unless a
Redis URL is configured, an embedded Redis server.

Per stream it runs a :class:`~streamer.pipeline.session.StreamSession` on a stream host
(:mod:`streamer.service.host`: up to ``service.streams_per_host`` streams share a worker
process, each an asyncio task; a crashed host is restarted and its streams resume),
watches its ``run`` to learn how it ended, and forgets nothing: finished streams stay
listed with their final state, summary and error, so a client that looks late still
learns what happened.

A submitted network URL is held to the network policy (:mod:`streamer.sources.netpolicy`)
before anything is opened: a denied address, in whatever notation, or a name that
resolves to one, is a 400 with the reason. That check is for the user's benefit; the
one that protects is made again by the session's gateway on every connection. The
manager decides what ``source.local_networks: auto`` means for this service (loopback
and private ranges are refused when it listens beyond loopback) and hands its sessions
the decided value.
"""
from __future__ import annotations

import asyncio
import builtins
import copy
import re
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray

from streamer.clock import now_iso
from streamer.config import Config
from streamer.data.redis_codec import stream_key
from streamer.pipeline.ray_errors import root_cause
from streamer.pipeline.status import ACTIVE, StreamProgress, StreamState, StreamStatus, StreamSummary
from streamer.service.errors import ApiError
from streamer.service.host import HostPool
from streamer.sources.urls import SourceKind, SourceSpec, Transport

ACTOR_NAME = "facestream-manager"
NAMESPACE = "facestream"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PROGRESS_TIMEOUT_S = 2.0
_RESOLVE_TIMEOUT_S = 5.0      # a submission waits this long for DNS, then the session decides


@dataclass
class _Stream:
    id: str
    url: str                 # as shown to clients: credentials redacted
    name: str | None
    fps: float | None
    options: dict
    created_at: str
    session: Any = None      # its HostedStream while it runs
    run: Any = None          # ObjectRef of its run on the host
    state: StreamState = StreamState.CONNECTING
    summary: StreamSummary | None = None
    error: str | None = None
    ended_at: str | None = None
    last: StreamProgress | None = None   # the latest progress seen (None: none yet)


class StreamManager:
    """Create, list, inspect and stop streams (an async Ray actor)."""

    def __init__(self, cfg: Config, exposed: bool = False):
        from streamer.pipeline import backend
        from streamer.sources.netpolicy import NetworkPolicy
        from streamer.sources.urls import media_root_from

        self.cfg = copy.deepcopy(cfg)
        if self.cfg.source.local_networks == "auto":     # sessions get the decided value
            self.cfg.source.local_networks = "deny" if exposed else "allow"
        self.policy = NetworkPolicy.from_config(self.cfg.source, exposed=exposed)
        self.cfg.parquet.out = str(Path(cfg.parquet.out).resolve())
        self.media_root = media_root_from(cfg.media_root)
        self.backend = backend.start(self.cfg, *backend.check_services(self.cfg))
        self.redis_url = self.backend.redis_url
        self.redis_label = self.backend.redis_label
        self.replicas = self.backend.replicas
        self.hosts = HostPool(self.cfg)        # the processes that run the streams
        self.version = self.backend.version
        self.streams: dict[str, _Stream] = {}
        self.started = time.time()

    # ---- lifecycle -----------------------------------------------------------------

    async def create(self, url: str, name: str | None = None, fps: float | None = None,
                     options: dict | None = None) -> StreamStatus:
        """Start a stream; raises ApiError 400 (refused URL), 409 (id taken), 429 (limit)."""
        from streamer.sources.frames import SourceError
        from streamer.sources.urls import check_source, redact

        options = dict(options or {})
        try:
            spec = check_source(url, self.media_root)
        except SourceError as e:
            raise ApiError(400, "url_refused", str(e)) from None
        transport = Transport(options.get("transport", Transport.TCP))
        if spec.kind != SourceKind.FILE:
            await self._check_network(spec, transport)
        if spec.kind == SourceKind.FILE and not Path(spec.target).is_file():
            # refused here, not by a session that would hold a stream slot to fail later
            raise ApiError(400, "no_such_file", f"{url}: no such file under the media root")
        active = sum(s.state in ACTIVE for s in self.streams.values())
        if active >= self.cfg.service.max_streams:
            raise ApiError(429, "too_many_streams",
                           f"{active} streams are running, the limit is {self.cfg.service.max_streams}; "
                           "stop one first")
        stream_id = self._new_id(name, spec.target)
        await self._check_redis_key_free(stream_id)
        cfg = copy.deepcopy(self.cfg)
        if fps is not None:
            cfg.source.fps = fps
        if "every" in options:
            cfg.source.every = int(options["every"])
        shown = redact(url)
        sinks = self.backend.sinks(cfg, stream_id, shown, live=spec.kind != SourceKind.FILE)
        target = spec.target if spec.kind == SourceKind.FILE else url
        stream = _Stream(id=stream_id, url=shown, name=name, fps=fps, options=options, created_at=now_iso())
        stream.session = self.hosts.place(stream_id)
        stream.run = stream.session.run(target, cfg, self.replicas, sinks, media_root=self.media_root,
                                        transport=transport,
                                        gallery_url=self.backend.redis_url)
        self.streams[stream_id] = stream
        asyncio.get_running_loop().create_task(self._watch(stream))
        return self._status(stream)

    async def stop(self, stream_id: str) -> StreamStatus:
        """Stop a stream and wait (``service.stop_timeout_s``) for its sinks to flush."""
        stream = self._get(stream_id)
        if stream.state in ACTIVE:
            stream.state = StreamState.STOPPING
            session = stream.session

            async def stopped() -> None:
                await session.stop()   # kept by the host if the stream's run has not started yet
                await self._settled(stream)

            try:
                await asyncio.wait_for(stopped(), self.cfg.service.stop_timeout_s)
            except (asyncio.TimeoutError, ray.exceptions.RayError):
                session.release(abort=True)   # its host's other streams carry on
                self._finish(stream, StreamState.FAILED,
                             error=f"did not stop within {self.cfg.service.stop_timeout_s:g} s; "
                                   "killed (records already published are kept)")
        return self._status(stream)

    async def shutdown(self) -> dict:
        """Stop every stream (flushing its sinks), then the replicas and embedded Redis."""
        await asyncio.gather(*(self.stop(s.id) for s in list(self.streams.values()) if s.state in ACTIVE))
        self.hosts.stop()
        self.backend.stop()
        return {s.id: s.state for s in self.streams.values()}

    # ---- reading -------------------------------------------------------------------

    async def get(self, stream_id: str) -> StreamStatus:
        stream = self._get(stream_id)
        await self._refresh([stream])
        return self._status(stream)

    async def list(self) -> list[StreamStatus]:
        streams = list(self.streams.values())
        await self._refresh(streams)
        return [self._status(s) for s in streams]

    async def health(self, detailed: bool = False) -> dict:
        """Status for probes: versions and counts. ``detailed`` adds what an attacker
        could aim at (the Redis address, the media root, the output directory), for
        callers the API has authenticated."""
        health = {"status": "ok", "model_version": self.version, "accepts_files": self.media_root is not None,
                  "streams_active": sum(s.state in ACTIVE for s in self.streams.values()),
                  "max_streams": self.cfg.service.max_streams, "uptime_s": time.time() - self.started}
        if detailed:
            health.update(redis=self.redis_label, media_root=self.media_root, parquet_out=self.cfg.parquet.out,
                          local_networks=self.cfg.source.local_networks)
        return health

    async def metrics(self) -> dict:
        """Everything /metrics renders: per stream progress (StreamProgress as JSON, the
        stream's state the manager's), per replica counters."""
        streams = list(self.streams.values())
        await self._refresh(streams)

        async def stats(handle) -> dict:
            try:
                return await asyncio.wait_for(handle.stats.remote(), _PROGRESS_TIMEOUT_S)
            except (asyncio.TimeoutError, ray.exceptions.RayError):
                return {}

        regressors = await asyncio.gather(*(stats(r) for r in self.replicas.regressors))
        detectors = await asyncio.gather(*(stats(d) for d in self.replicas.detectors))
        return {"streams": {s.id: _progress_json(s) for s in streams},
                "regressors": list(regressors), "detectors": list(detectors)}

    # ---- internals -----------------------------------------------------------------

    async def _check_network(self, spec: SourceSpec, transport: Transport) -> None:
        """400 for a network source the policy refuses, before anything is opened."""
        from streamer.sources.live import UDP_REFUSED
        from streamer.sources.netpolicy import NetworkRefused, system_resolver

        if spec.kind == SourceKind.RTSP and transport == Transport.UDP and not self.cfg.source.rtsp_udp:
            raise ApiError(400, "transport_refused", f"{spec.label}: {UDP_REFUSED}")
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(None, self.policy.check_url, spec.target, system_resolver),
                                   _RESOLVE_TIMEOUT_S)
        except NetworkRefused as e:
            raise ApiError(400, "url_refused", f"{spec.label}: {e}") from None
        except (OSError, asyncio.TimeoutError):
            pass   # does not resolve now: the session retries it as an unreachable source

    def _get(self, stream_id: str) -> _Stream:
        stream = self.streams.get(stream_id)
        if stream is None:
            raise ApiError(404, "unknown_stream", f"no stream with id {stream_id!r}")
        return stream

    def _new_id(self, name: str | None, target: str) -> str:
        if name is not None:
            if not _ID.match(name):
                raise ApiError(400, "bad_name", "name must be 1-64 characters of letters, digits, "
                                                "'_', '.', '-', starting with a letter or digit")
            if name in self.streams:
                raise ApiError(409, "name_taken", f"a stream named {name!r} exists already")
            return name
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(target.split("?")[0]).stem).strip("-.")[:40] or "stream"
        while True:
            candidate = f"{stem}-{secrets.token_hex(3)}"
            if candidate not in self.streams and _ID.match(candidate):
                return candidate

    async def _check_redis_key_free(self, stream_id: str) -> None:
        """A new stream must not append to records of an older one with the same id:
        Redis would refuse its smaller entry ids as 'already written'."""
        import redis

        def exists() -> bool:
            client = redis.Redis.from_url(self.redis_url, socket_timeout=self.cfg.redis.connect_timeout_s,
                                          socket_connect_timeout=self.cfg.redis.connect_timeout_s)
            try:
                return bool(client.exists(stream_key(self.cfg.redis.key_prefix, stream_id)))
            finally:
                client.close()

        try:
            taken = await asyncio.get_running_loop().run_in_executor(None, exists)
        except redis.RedisError as e:
            raise ApiError(503, "redis_unavailable", f"Redis at {self.redis_label} is not reachable: {e}") from None
        if taken:
            raise ApiError(409, "name_taken", f"Redis already holds records of a stream {stream_id!r}; "
                                              "choose another name")

    async def _watch(self, stream: _Stream) -> None:
        """Learn how a session's run ended, then free the actor."""
        try:
            summary: StreamSummary = await stream.run
            self._finish(stream, summary.state, summary=summary)
        except ray.exceptions.RayTaskError as e:
            cause = root_cause(e)
            self._finish(stream, StreamState.FAILED, error=f"{type(cause).__name__}: {cause}")
        except ray.exceptions.RayError as e:
            if stream.session is not None:
                stream.session.host_lost()   # no new stream goes there
            self._finish(stream, StreamState.FAILED, error=f"session lost: {type(e).__name__}")

    async def _settled(self, stream: _Stream) -> None:
        while stream.state in ACTIVE:
            await asyncio.sleep(0.05)

    def _finish(self, stream: _Stream, state: StreamState, summary: StreamSummary | None = None,
                error: str | None = None) -> None:
        if stream.state not in ACTIVE:
            return
        if summary is not None:
            stream.summary = summary
            stream.last = (stream.last or StreamProgress()).finished(summary)
        stream.state, stream.error, stream.ended_at = state, error, now_iso()
        if stream.session is not None:
            stream.session.release()   # a host whose last stream this was ends, as a session actor did
            stream.session = None

    async def _refresh(self, streams: builtins.list[_Stream]) -> None:  # `list` is the method above
        """Fetch the progress of running sessions (a stuck one keeps its last numbers)."""
        async def one(stream: _Stream) -> None:
            if stream.session is None or stream.state not in ACTIVE:
                return
            try:
                p: StreamProgress | None = await asyncio.wait_for(stream.session.progress(), _PROGRESS_TIMEOUT_S)
            except (asyncio.TimeoutError, ray.exceptions.RayError):
                return
            if p is None:   # its run has not started on the host yet
                return
            stream.last = p
            if stream.state == StreamState.CONNECTING and p.state == StreamState.RUNNING:
                stream.state = StreamState.RUNNING

        await asyncio.gather(*(one(s) for s in streams))

    def _status(self, s: _Stream) -> StreamStatus:
        p = s.last or StreamProgress()
        return StreamStatus(id=s.id, name=s.name, url=s.url, state=s.state, created_at=s.created_at,
                            ended_at=s.ended_at, progress=p, last_error=s.error or p.last_error,
                            redis_stream=stream_key(self.cfg.redis.key_prefix, s.id),
                            parquet=str(Path(self.cfg.parquet.out) / "records"))


def _progress_json(s: _Stream) -> dict:
    """A stream's progress for /metrics, its state the manager's (none seen yet: the state only)."""
    return replace(s.last, state=s.state).to_json() if s.last is not None else {"state": s.state}


def get_or_start(cfg: Config, exposed: bool = False) -> Any:
    """The service's manager actor: found by name, or started (detached, so it outlives
    the API replica that started it; ``facestream serve`` ends it on shutdown).
    ``exposed``: the API listens beyond loopback (see the module doc)."""
    actor = ray.remote(StreamManager).options(
        name=ACTOR_NAME, namespace=NAMESPACE, get_if_exists=True, lifetime="detached",
        num_cpus=0, max_concurrency=1000)
    return actor.remote(cfg, exposed)
