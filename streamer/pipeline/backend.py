"""What every stream of a run or a service shares, set up in one place.

``facestream analyze`` (one file, :mod:`streamer.pipeline.analyze`) and ``facestream serve``
(many streams, :mod:`streamer.service.manager`) need the same things before a session
starts: a checkpoint known to be usable, Redis (the configured one, checked to answer,
or an embedded server), the model replicas loaded, and per stream the same two sinks
with the same Parquet metadata. :func:`check_services` and :func:`start` do it for both,
so the two entry points cannot drift apart. Ray must be running (``streamer.pipeline.runtime``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import ray

from streamer.config import Config
from streamer.data.sinks.parquet_sink import ParquetSink
from streamer.data.sinks.redis_sink import RedisSink
from streamer.pipeline.checkpoint_check import check_checkpoint
from streamer.pipeline.redis_server import EmbeddedRedis
from streamer.pipeline.replicas import ModelInfo, Replicas
from streamer.pipeline.session import SinkFactory
from streamer.sources.urls import redact


def check_services(cfg: Config) -> tuple[Path, dict]:
    """Fail fast on what the configuration names: the checkpoint (its path and metadata
    are returned) and, when one is configured, Redis."""
    ckpt_path, meta = check_checkpoint(cfg)
    if cfg.redis.url:
        RedisSink.check(cfg.redis.url, cfg.redis.connect_timeout_s)
    return ckpt_path, meta


def cpus_needed(cfg: Config) -> int:
    """Logical CPUs a private cluster needs for the replicas (sessions reserve none)."""
    m = cfg.model
    need = (m.detector_replicas + m.regressor_replicas) * m.num_cpus_per_replica
    return max(2, math.ceil(need))


@dataclass
class Backend:
    """Redis and the model replicas, running; :meth:`sinks` gives a stream its sinks."""

    checkpoint: Path
    meta: dict
    redis_url: str
    replicas: Replicas
    version: str                          # the regressor's model version string
    redis_server: EmbeddedRedis | None    # None: the configured Redis is used
    model: ModelInfo                      # what the replicas said of their model (how crops are read)

    @property
    def redis_label(self) -> str:
        """The Redis URL fit to show (no password)."""
        return redact(self.redis_url)

    def sinks(self, cfg: Config, stream_id: str, source: str, *, live: bool) -> list[SinkFactory]:
        """Factories of a stream's Redis and Parquet sinks; ``source`` is how its Parquet
        metadata names the source (a path, or a URL without credentials), ``live`` whether
        it is a live stream, whose crops may be read differently from a file's: the
        metadata says how (``facestream.reading``), as the ``started`` event does."""
        fm = self.meta["face_model"]
        metadata = {
            "facestream.model_version": self.version,
            "facestream.checkpoint": str(self.meta.get("name", "")),
            "facestream.face_model_version": str(fm.get("version", "")),
            "facestream.face_model_sha256": str(fm.get("sha256", "")),
            "facestream.source": source,
            "facestream.reading": self.model.reading_for(live).value,
        }
        return [partial(RedisSink, cfg.redis, stream_id, self.redis_url),
                partial(ParquetSink, cfg.parquet, stream_id, metadata)]

    def stop(self) -> None:
        """Stop the replicas, then the embedded Redis if there is one."""
        try:
            self.replicas.stop()
        finally:
            if self.redis_server is not None:
                self.redis_server.stop()


def start(cfg: Config, ckpt_path: Path, meta: dict, redis_dir: Path | None = None) -> Backend:
    """Start Redis (embedded unless ``cfg.redis.url``; keeping its data in ``redis_dir``
    when given, see :class:`EmbeddedRedis`) and the replicas, and wait until every
    replica has loaded; whatever was started is stopped again if one fails."""
    server = None
    if not cfg.redis.url:
        server = EmbeddedRedis(data_dir=redis_dir)
        server.start()
    try:
        replicas = Replicas.start(cfg, str(ckpt_path))
        try:
            replicas.ready()
            model: ModelInfo = ray.get(replicas.info())
        except BaseException:
            replicas.stop()
            raise
    except BaseException:
        if server is not None:
            server.stop()
        raise
    redis_url = server.url if server is not None else cfg.redis.url
    assert redis_url  # the configured URL, or the embedded server's when there is none
    return Backend(ckpt_path, meta, redis_url, replicas, model.version, server, model)
