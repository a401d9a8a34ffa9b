"""The service's streams in a real Redis hash: written, read back typed, removed; and
when a finished stream expires."""
from __future__ import annotations

import json

import redis

from streamer.pipeline.status import StreamProgress, StreamState, StreamSummary
from streamer.service.registry import StoredStream, StreamDefinition, StreamRegistry, registry_key


def _stream(stream_id: str, state: StreamState, ended_epoch: float | None = None) -> StoredStream:
    definition = StreamDefinition(id=stream_id, url="rtsp://user:secret@127.0.0.1:8554/cam",
                                  shown="rtsp://***@127.0.0.1:8554/cam", name=stream_id, fps=5.0,
                                  options={"transport": "tcp", "every": 2}, created_at="2026-12-07T12:00:00Z")
    done = None if state.active else StreamSummary(stream_id, state, frames=40, faces=38, dropped_frames=2)
    return StoredStream(definition, state, runs=2, ended_at="2026-12-07T12:01:00Z" if done else None,
                        ended_epoch=ended_epoch, error="boom" if state == StreamState.FAILED else None,
                        progress=StreamProgress(state=state, frames=40, faces=38, source_fps=25.0), summary=done)


def test_streams_round_trip_through_the_hash_and_leave_it(redis_url):
    registry = StreamRegistry(redis_url, "fs-test", timeout_s=2.0)
    running, failed = _stream("cam", StreamState.RUNNING), _stream("talk", StreamState.FAILED, 1000.0)
    registry.save(running)
    registry.save(failed)
    client = redis.Redis.from_url(redis_url)
    raw = json.loads(client.hget(registry_key("fs-test"), "cam"))
    assert registry_key("fs-test") == "fs-test:service:streams"
    assert raw["url"] == "rtsp://user:secret@127.0.0.1:8554/cam" and raw["state"] == "running"   # a resume needs it
    assert registry.load() == [running, failed]     # typed again: enums, progress, summary
    assert registry.load()[1].summary.dropped_frames == 2 and registry.load()[1].state is StreamState.FAILED
    client.hset(registry_key("fs-test"), "junk", "{not json")
    registry.remove("cam")
    assert [s.definition.id for s in registry.load()] == ["talk"]   # the unreadable entry left out
    registry.close()
    client.close()


def test_only_finished_streams_expire_and_zero_means_never():
    ended = _stream("a", StreamState.ENDED, ended_epoch=1000.0)
    assert not ended.expired(now=1000.0 + 3599, ttl_s=3600) and ended.expired(now=1000.0 + 3600, ttl_s=3600)
    assert not ended.expired(now=1e12, ttl_s=0)
    assert not _stream("b", StreamState.RUNNING).expired(now=1e12, ttl_s=1)
    assert _stream("c", StreamState.STOPPED, ended_epoch=5.0).expired(now=7.0, ttl_s=1.5)
