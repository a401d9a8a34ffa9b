"""``StreamManager``: the one actor that owns a service's streams.

The API deployment is stateless and may run as several replicas or be restarted by
Serve; the registry of streams must outlive that, so it lives here, in a named detached
actor that every API replica finds by name. The manager also owns what all streams
share: the model replicas (loaded once, batching crops across streams) and, unless a
Redis URL is configured, an embedded Redis server.

Per stream it runs a :class:`~streamer.pipeline.session.StreamSession` on a stream host
(:mod:`streamer.service.host`: streams are spread over ``service.hosts`` worker processes,
one per CPU by default, and up to ``service.streams_per_host`` share one, each an asyncio
task; a crashed host is restarted and its streams resume),
watches its ``run`` to learn how it ended, and keeps finished streams listed with their
final state, summary and error, so a client that looks late still learns what happened:
until ``service.finished_ttl_s`` has passed or a DELETE removes it, which frees its name.

A stream's lifecycle outlives the service: each stream's definition and state are kept
in the Redis the service uses (:mod:`streamer.service.registry`), and a new service
(after a crash, a ``kill -9`` or a clean stop) lists the finished ones as they were and
resumes those that were running (:meth:`StreamManager.restore`): a camera starts again,
a file carries on after the last frame its outputs hold, each with a ``resumed`` event.
A stopped or failed stream can be restarted on request (same id and options, a new run
that carries on after its records, a ``restarted`` event). A name freed by DELETE or
expiry can be submitted again: the new stream replaces the old one's records (its Redis
stream is deleted, its Parquet partition moved to ``{parquet.out}/replaced/``), because a
Redis stream cannot take a new run's smaller entry ids and one partition must hold one
stream's frames.

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
import logging
import re
import secrets
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray

from streamer.clock import now_iso
from streamer.config import Config
from streamer.data.redis_codec import stream_key
from streamer.data.sinks.parquet_sink import partition_name
from streamer.pipeline.ray_errors import root_cause
from streamer.pipeline.status import ACTIVE, RunCause, StreamProgress, StreamState, StreamStatus, StreamSummary
from streamer.service.errors import ApiError
from streamer.service.host import HostPool
from streamer.service.registry import StoredStream, StreamDefinition, StreamRegistry
from streamer.sources.urls import SourceKind, SourceSpec, Transport

ACTOR_NAME = "facestream-manager"
NAMESPACE = "facestream"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PROGRESS_TIMEOUT_S = 2.0
_RESOLVE_TIMEOUT_S = 5.0      # a submission waits this long for DNS, then the session decides


@dataclass
class _Stream:
    definition: StreamDefinition
    session: Any = None      # its HostedStream while it runs
    run: Any = None          # ObjectRef of its run on the host
    state: StreamState = StreamState.CONNECTING
    runs: int = 1
    summary: StreamSummary | None = None
    error: str | None = None
    ended_at: str | None = None
    ended_epoch: float | None = None     # time.time() at the end: when it expires
    last: StreamProgress | None = None   # the latest progress seen (None: none yet)

    @property
    def id(self) -> str:
        return self.definition.id

    def stored(self) -> StoredStream:
        return StoredStream(self.definition, self.state, self.runs, self.ended_at, self.ended_epoch, self.error,
                            self.last, self.summary)

    @classmethod
    def from_stored(cls, s: StoredStream) -> _Stream:
        return cls(s.definition, state=s.state, runs=s.runs, summary=s.summary, error=s.error, ended_at=s.ended_at,
                   ended_epoch=s.ended_epoch, last=s.progress)


@dataclass
class Deleted:
    """What DELETE did: ``removed`` (an ended stream left the list, its name is free) or
    not (an active stream was stopped, and stays listed as stopped)."""

    status: StreamStatus
    removed: bool


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
        redis_dir = None
        if not self.cfg.redis.url and self.cfg.redis.persist:
            redis_dir = Path(self.cfg.redis.data_dir or Path(self.cfg.parquet.out) / "redis").resolve()
        self.backend = backend.start(self.cfg, *backend.check_services(self.cfg), redis_dir=redis_dir)
        self.redis_url = self.backend.redis_url
        self.redis_label = self.backend.redis_label
        self.replicas = self.backend.replicas
        self.hosts = HostPool(self.cfg)        # the processes that run the streams
        self.version = self.backend.version
        self.streams: dict[str, _Stream] = {}
        self.started = time.time()
        self.registry = StreamRegistry(self.redis_url, self.cfg.redis.key_prefix, self.cfg.redis.connect_timeout_s)
        self._registry_writes = ThreadPoolExecutor(1, thread_name_prefix="registry")   # in order
        self._restored = False
        self._closing = False
        self._reserved: set[str] = set()   # ids being created, not yet listed

    # ---- lifecycle -----------------------------------------------------------------

    async def create(self, url: str, name: str | None = None, fps: float | None = None,
                     options: dict | None = None) -> StreamStatus:
        """Start a stream; raises ApiError 400 (refused URL), 409 (id taken), 429 (limit)."""
        from streamer.sources.urls import redact

        self._expire()
        options = dict(options or {})
        spec = await self._checked_source(url, Transport(options.get("transport", Transport.TCP)))
        self._check_room()
        stream_id = self._new_id(name, spec.target)
        self._reserved.add(stream_id)   # a second POST of the name meanwhile gets 409
        try:
            await self._clear_old_records(stream_id)
        finally:
            self._reserved.discard(stream_id)
        definition = StreamDefinition(id=stream_id, url=url, shown=redact(url), name=name, fps=fps,
                                      options=options, created_at=now_iso())
        stream = _Stream(definition)
        self.streams[stream_id] = stream
        self._launch(stream, spec, RunCause.SUBMITTED)
        await self._save(stream)
        return self._status(stream)

    async def restart(self, stream_id: str) -> StreamStatus:
        """Start a stopped or failed stream again: same id, URL and options, a new run
        that carries on after the records it has (a ``restarted`` event says from where).
        409 for a stream that is active or ended (its source ran out), 429 at the limit."""
        self._expire()
        d = self._get(stream_id).definition
        spec = await self._checked_source(d.url, Transport(d.options.get("transport", Transport.TCP)))
        stream = self._get(stream_id)    # checked after the wait: a second restart may have come first
        if stream.state in ACTIVE or stream.state == StreamState.ENDED:
            why = ("its source ran out; submit it again to start over (DELETE it first to reuse the name)"
                   if stream.state == StreamState.ENDED else "it has not finished; stop it first")
            raise ApiError(409, "not_restartable", f"stream {stream_id!r} is {stream.state}: {why}")
        self._check_room()
        stream.runs += 1
        stream.summary = stream.error = stream.ended_at = stream.ended_epoch = stream.last = None
        self._launch(stream, spec, RunCause.RESTARTED)
        await self._save(stream)
        return self._status(stream)

    async def delete(self, stream_id: str) -> Deleted:
        """DELETE: an active stream is stopped (see :meth:`stop`) and stays listed; a
        finished one leaves the list and the registry, and its name is free. Its records
        stay in Redis and Parquet until a new stream takes the name."""
        self._expire()
        stream = self._get(stream_id)
        if stream.state in ACTIVE:
            return Deleted(await self.stop(stream_id), removed=False)
        self._forget(stream)
        return Deleted(self._status(stream), removed=True)

    async def restore(self) -> builtins.list[str]:
        """Once per manager: bring back the streams the registry holds. Finished ones are
        listed as they were; those that were running are started again (a ``resumed``
        event, with the frame they carry on after); one caught stopping is stopped; one
        that cannot be started (its file is gone) is failed, saying why. Returns the ids
        resumed."""
        if self._restored:
            return []
        self._restored = True
        loop = asyncio.get_running_loop()
        try:
            stored = await loop.run_in_executor(self._registry_writes, self.registry.load)
        except Exception as e:   # a Redis that cannot be read: start with nothing, saying why
            logging.getLogger(__name__).warning("streams not restored: %s", e)
            return []
        resumed = []
        now = time.time()
        for entry in stored:
            if entry.expired(now, self.cfg.service.finished_ttl_s):
                self._registry_writes.submit(self.registry.remove, entry.definition.id)
                continue
            if entry.definition.id in self.streams:
                continue
            stream = _Stream.from_stored(entry)
            self.streams[stream.id] = stream
            if stream.state == StreamState.STOPPING:
                self._finish(stream, StreamState.STOPPED, error="the service went down while the stream stopped")
            elif stream.state in ACTIVE:
                d = stream.definition
                try:
                    spec = await self._checked_source(d.url, Transport(d.options.get("transport", Transport.TCP)),
                                                      check_network=False)
                except ApiError as e:
                    self._finish(stream, StreamState.FAILED, error=f"not resumed after the service restarted: "
                                                                   f"{e.message}")
                    continue
                stream.last = None
                self._launch(stream, spec, RunCause.SERVICE_RESTART)
                await self._save(stream)
                resumed.append(stream.id)
        return resumed

    async def stop(self, stream_id: str) -> StreamStatus:
        """Stop a stream and wait (``service.stop_timeout_s``) for its sinks to flush."""
        stream = self._get(stream_id)
        if stream.state in ACTIVE:
            stream.state = StreamState.STOPPING
            self._save_soon(stream)   # a service that goes down now does not resume it
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
        """Stop every stream (flushing its sinks), then the replicas and embedded Redis.
        The registry keeps the streams as they were before (running ones running), so
        that the next service resumes them as it would after a crash; a stream that is
        not to come back is stopped with DELETE first."""
        self._closing = True
        await asyncio.gather(*(self.stop(s.id) for s in list(self.streams.values()) if s.state in ACTIVE))
        self._registry_writes.shutdown(wait=True)
        self.registry.close()
        self.hosts.stop()
        self.backend.stop()
        return {s.id: s.state for s in self.streams.values()}

    # ---- reading -------------------------------------------------------------------

    async def get(self, stream_id: str) -> StreamStatus:
        self._expire()
        stream = self._get(stream_id)
        await self._refresh([stream])
        return self._status(stream)

    async def list(self) -> list[StreamStatus]:
        self._expire()
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
        self._expire()
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

    async def _checked_source(self, url: str, transport: Transport, check_network: bool = True) -> SourceSpec:
        """The source a URL names, refused (400) as a submission is: outside the policy,
        or a file that is not there."""
        from streamer.sources.frames import SourceError
        from streamer.sources.urls import check_source

        try:
            spec = check_source(url, self.media_root)
        except SourceError as e:
            raise ApiError(400, "url_refused", str(e)) from None
        if spec.kind != SourceKind.FILE and check_network:
            await self._check_network(spec, transport)
        if spec.kind == SourceKind.FILE and not Path(spec.target).is_file():
            # refused here, not by a session that would hold a stream slot to fail later
            raise ApiError(400, "no_such_file", f"{spec.label}: no such file under the media root")
        return spec

    def _check_room(self) -> None:
        active = sum(s.state in ACTIVE for s in self.streams.values())
        if active >= self.cfg.service.max_streams:
            raise ApiError(429, "too_many_streams",
                           f"{active} streams are running, the limit is {self.cfg.service.max_streams}; "
                           "stop one first")

    def _launch(self, stream: _Stream, spec: SourceSpec, cause: RunCause) -> None:
        """Start a run of the stream on a host, watched; ``cause`` picks its first event."""
        d = stream.definition
        cfg = copy.deepcopy(self.cfg)
        if d.fps is not None:
            cfg.source.fps = d.fps
        if "every" in d.options:
            cfg.source.every = int(d.options["every"])
        live = spec.kind != SourceKind.FILE
        sinks = self.backend.sinks(cfg, d.id, d.shown, live=live)
        stream.state = StreamState.CONNECTING
        stream.session = self.hosts.place(d.id)
        stream.run = stream.session.run(d.url if live else spec.target, cfg, self.replicas, sinks,
                                        media_root=self.media_root,
                                        transport=Transport(d.options.get("transport", Transport.TCP)),
                                        redis_url=self.backend.redis_url, cause=cause)
        asyncio.get_running_loop().create_task(self._watch(stream, stream.run))

    async def _save(self, stream: _Stream) -> None:
        """Write the stream to the registry (in order with every other write) and wait."""
        if not self._closing:
            await asyncio.wrap_future(self._registry_writes.submit(self.registry.save, stream.stored()))

    def _save_soon(self, stream: _Stream) -> None:
        if not self._closing:
            self._registry_writes.submit(self.registry.save, stream.stored())

    def _forget(self, stream: _Stream) -> None:
        """Out of the list and the registry: its name is free."""
        self.streams.pop(stream.id, None)
        if not self._closing:
            self._registry_writes.submit(self.registry.remove, stream.id)

    def _expire(self) -> None:
        """Forget the finished streams older than ``service.finished_ttl_s`` (checked on
        every call that lists, reads or names a stream, so no timer is needed)."""
        now, ttl = time.time(), self.cfg.service.finished_ttl_s
        for stream in list(self.streams.values()):
            if stream.stored().expired(now, ttl):
                self._forget(stream)

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
            if name in self.streams or name in self._reserved:
                raise ApiError(409, "name_taken", f"a stream named {name!r} exists already "
                                                  f"({self.streams[name].state}); DELETE /streams/{name} "
                                                  "once it has finished frees the name")
            return name
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(target.split("?")[0]).stem).strip("-.")[:40] or "stream"
        while True:
            candidate = f"{stem}-{secrets.token_hex(3)}"
            if candidate not in self.streams and candidate not in self._reserved and _ID.match(candidate):
                return candidate

    async def _clear_old_records(self, stream_id: str) -> None:
        """A new stream replaces the records an older one of the same id left (see the
        module doc): its Redis stream is deleted (Redis would refuse the new run's smaller
        entry ids as 'already written') and its Parquet partition moved to
        ``{out}/replaced/{id}-{time}/records/`` (a session would take it for its own
        earlier output and skip those frames)."""
        import redis

        def clear() -> None:
            client = redis.Redis.from_url(self.redis_url, socket_timeout=self.cfg.redis.connect_timeout_s,
                                          socket_connect_timeout=self.cfg.redis.connect_timeout_s)
            try:
                client.delete(stream_key(self.cfg.redis.key_prefix, stream_id))
            finally:
                client.close()
            out = Path(self.cfg.parquet.out)
            partition = out / "records" / f"stream={partition_name(stream_id)}"
            if partition.is_dir() and any(partition.glob("part-*.parquet")):
                stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                aside = out / "replaced" / f"{partition_name(stream_id)}-{stamp}" / "records"
                aside.mkdir(parents=True, exist_ok=True)
                shutil.move(str(partition), str(aside / partition.name))

        try:
            await asyncio.get_running_loop().run_in_executor(None, clear)
        except redis.RedisError as e:
            raise ApiError(503, "redis_unavailable", f"Redis at {self.redis_label} is not reachable: {e}") from None

    async def _watch(self, stream: _Stream, run: Any) -> None:
        """Learn how a session's run ended, then free the actor (unless a later run of
        the stream has started meanwhile: this run's end is then old news)."""
        try:
            summary: StreamSummary = await run
            if stream.run is run:
                self._finish(stream, summary.state, summary=summary)
        except ray.exceptions.RayTaskError as e:
            cause = root_cause(e)
            if stream.run is run:
                self._finish(stream, StreamState.FAILED, error=f"{type(cause).__name__}: {cause}")
        except ray.exceptions.RayError as e:
            if stream.run is run:
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
        stream.state, stream.error, stream.ended_at, stream.ended_epoch = state, error, now_iso(), time.time()
        if stream.session is not None:
            stream.session.release()   # a host whose last stream this was ends, as a session actor did
            stream.session = None
        self._save_soon(stream)

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
        d = s.definition
        return StreamStatus(id=s.id, name=d.name, url=d.shown, state=s.state, created_at=d.created_at,
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
