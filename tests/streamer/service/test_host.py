"""Many streams in one process (``StreamHost``), on real Ray, real Redis, real video.

Crash isolation as with a process per stream: a corrupt video and a sink that breaks
mid-stream each end their own stream with its ``failed`` event while the other streams
of the same host finish with every record; a host whose process is killed mid-run is
restarted by Ray and every one of its streams resumes after its sinks' committed frame,
nothing lost or doubled.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from functools import partial

import pytest
import ray
import redis

from streamer.data.dataset import read_records
from streamer.data.events import decode_event
from streamer.data.redis_codec import decode_redis, events_key, stream_key
from streamer.data.sinks import ParquetSink, RedisSink
from streamer.data.sinks.base import SinkError
from streamer.pipeline.ray_errors import root_cause
from streamer.service.host import HostPool, launch_host
from streamer.sources.frames import SourceError

LONG_FRAMES = 150


class BreaksAfter(RedisSink):
    """A Redis sink that fails once it has written ``n`` records (a sink error mid-stream)."""

    def __init__(self, n: int, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._left = n

    def write(self, records):
        if self._left <= 0:
            raise SinkError("the sink broke")
        self._left -= len(records)
        super().write(records)


def _sinks(cfg, stream_id, url, redis_sink=RedisSink):
    return [partial(redis_sink, cfg.redis, stream_id, url), partial(ParquetSink, cfg.parquet, stream_id)]


def _records(url, cfg, stream_id):
    client = redis.Redis.from_url(url)
    try:
        return [decode_redis(f) for _, f in client.xrange(stream_key(cfg.redis.key_prefix, stream_id))]
    finally:
        client.close()


def _events(url, cfg, stream_id):
    client = redis.Redis.from_url(url)
    try:
        events = [decode_event(f) for _, f in client.xrange(events_key(cfg.redis.key_prefix))]
    finally:
        client.close()
    return [e for e in events if e["stream_id"] == stream_id]


def test_streams_of_one_host_fail_alone(ray_runtime, shared_replicas, pipeline_config, redis_url,
                                        face_video, two_face_video, tmp_path):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])   # BreaksAfter, in the host
    cfg = pipeline_config
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(face_video.path.read_bytes()[:48] + os.urandom(60_000))
    host = launch_host(cfg)
    try:
        runs = {
            "one": host.run.remote("one", str(face_video.path), cfg, shared_replicas,
                                   _sinks(cfg, "one", redis_url), {}),
            "two": host.run.remote("two", str(two_face_video.path), cfg, shared_replicas,
                                   _sinks(cfg, "two", redis_url), {}),
            "corrupt": host.run.remote("corrupt", str(corrupt), cfg, shared_replicas,
                                       _sinks(cfg, "corrupt", redis_url), {}),
            "broken-sink": host.run.remote("broken-sink", str(face_video.path), cfg, shared_replicas,
                                           _sinks(cfg, "broken-sink", redis_url, partial(BreaksAfter, 10)), {}),
        }
        for ok, video in (("one", face_video), ("two", two_face_video)):
            summary = ray.get(runs[ok], timeout=180)
            assert summary.state == "ended" and summary.frames == video.frames
            records = _records(redis_url, cfg, ok)
            assert len(records) == video.frames * video.faces
            assert sorted({r.frame_index for r in records}) == list(range(video.frames))
            assert len(read_records(cfg.parquet.out, ok)) == video.frames * video.faces
            assert _events(redis_url, cfg, ok)[-1]["kind"] == "ended"
        for bad, kind in (("corrupt", SourceError), ("broken-sink", SinkError)):
            with pytest.raises(ray.exceptions.RayError) as error:
                ray.get(runs[bad], timeout=180)
            assert isinstance(root_cause(error.value), kind), error.value
            failed = _events(redis_url, cfg, bad)[-1]
            assert failed["kind"] == "failed" and type(root_cause(error.value)).__name__ in failed["error"]
        assert len(_records(redis_url, cfg, "broken-sink")) < face_video.frames
        info = ray.get(host.info.remote())
        assert info["streams_run"] == 4 and info["streams"] == []     # one process ran all four
    finally:
        ray.kill(host)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """One real face moving across 150 frames (6 s at 25 fps)."""
    from conftest import _face_patches, encode_face_video

    return encode_face_video(tmp_path_factory.mktemp("long") / "long.mp4", _face_patches("obama-720p.jpg", 110),
                             frames=LONG_FRAMES)


def _wait_frames(host, stream_ids, at_least: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = [ray.get(host.progress.remote(s)) for s in stream_ids]
        if all(p is not None and p.frames >= at_least for p in done):
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} frames in {timeout_s} s")


def test_a_killed_host_is_restarted_and_each_of_its_streams_resumes(
        ray_runtime, shared_replicas, pipeline_config, redis_url, long_video):
    cfg = pipeline_config
    cfg.parquet.rows_per_file = 20          # parts committed as the streams go
    cfg.redis.retry_s, cfg.redis.connect_timeout_s = 0.1, 1.0
    cfg.service.streams_per_host = 2
    cfg.service.hosts = 1                   # fill one host before spreading
    pool = HostPool(cfg)
    streams = {s: pool.place(s) for s in ("kill-a", "kill-b")}
    assert streams["kill-a"].host == streams["kill-b"].host       # both on one host
    host = streams["kill-a"].host
    runs = {s: h.run(str(long_video.path), cfg, shared_replicas, _sinks(cfg, s, redis_url))
            for s, h in streams.items()}
    try:
        _wait_frames(host, list(streams), 30)
        info = ray.get(host.info.remote())
        pid = info["pid"]
        assert info["detection_slots"] == {s: h.slot for s, h in streams.items()}   # the pool's reach the sessions
        assert None not in info["detection_slots"].values()
        os.kill(pid, signal.SIGKILL)             # the process dies; Ray restarts the host
        for stream_id, run in runs.items():
            summary = ray.get(run, timeout=240)  # ... and sends each stream's run() again
            assert summary.state == "ended"
            resumed = summary.resumed_after_frame
            assert resumed is not None and resumed < LONG_FRAMES
            assert summary.frames == LONG_FRAMES - resumed - 1
            kinds = [e["kind"] for e in _events(redis_url, cfg, stream_id)]
            assert kinds.count("started") == 2 and "resumed" in kinds and kinds[-1] == "ended"
            records = _records(redis_url, cfg, stream_id)
            assert [r.frame_index for r in records] == list(range(LONG_FRAMES))
            parquet = read_records(cfg.parquet.out, stream_id)
            assert sorted(r.frame_index for r in parquet) == list(range(LONG_FRAMES))
        assert ray.get(host.info.remote())["pid"] != pid
    finally:
        for h in streams.values():
            h.release()
    assert pool.hosts == []


def test_the_pool_fills_hosts_up_to_streams_per_host_and_ends_a_host_with_its_last_stream(monkeypatch):
    from streamer.config import load_config
    from streamer.service import host as host_module

    started, killed = [], []
    monkeypatch.setattr(host_module, "launch_host", lambda cfg: started.append(f"h{len(started)}") or started[-1])
    monkeypatch.setattr(host_module.ray, "kill", killed.append)
    cfg = load_config(overrides={"service": {"streams_per_host": 3, "hosts": 1}})
    pool = HostPool(cfg)
    placed = {s: pool.place(s) for s in "abcd"}
    assert [placed[s].host for s in "abcd"] == ["h0", "h0", "h0", "h1"]
    placed["a"].release()
    placed["b"].release()
    assert pool.place("e").host == "h0"          # h0 and h1 hold one each: the older
    placed["d"].release()
    assert killed == ["h1"]                       # its last stream gone, the host ends
    placed["d"].release()                         # twice is harmless
    assert killed == ["h1"] and len(pool.hosts) == 1
    placed["c"].host_lost()
    assert pool.place("f").host == "h2"          # nothing more on a lost host
    one = HostPool(load_config(overrides={"service": {"streams_per_host": 1}}))
    assert len({one.place(s).host for s in "xyz"}) == 3     # a process per stream, as before


def test_the_pool_spreads_streams_over_hosts_first_then_adds_each_to_the_least_busy(monkeypatch):
    from streamer.config import load_config
    from streamer.service import host as host_module

    started = []
    monkeypatch.setattr(host_module, "launch_host", lambda cfg: started.append(f"h{len(started)}") or started[-1])
    monkeypatch.setattr(host_module.ray, "kill", lambda handle: None)
    pool = HostPool(load_config(overrides={"service": {"streams_per_host": 3, "hosts": 2}}))
    placed = {s: pool.place(s) for s in "abcd"}
    assert [placed[s].host for s in "abcd"] == ["h0", "h1", "h0", "h1"]   # two cameras a host, not 3 + 1
    placed["a"].release()
    assert pool.place("e").host == "h0"          # h0 holds one, h1 two: the less busy
    assert [pool.place(s).host for s in "fgh"] == ["h0", "h1", "h2"]   # both full: a third host
    placed["c"].host_lost()
    assert pool.place("i").host == "h2"          # nothing more on a lost host


def test_the_pool_spreads_over_the_ray_clusters_cpus_by_default(ray_runtime, monkeypatch):
    from streamer.config import load_config
    from streamer.service import host as host_module

    monkeypatch.setattr(host_module, "launch_host", lambda cfg: object())
    pool = HostPool(load_config())
    assert pool.spread == int(ray.cluster_resources()["CPU"]) >= 1
    assert len({id(pool.place(s).host) for s in range(pool.spread)}) == pool.spread


def test_the_pool_gives_each_stream_the_detection_slot_least_used_by_the_others(monkeypatch):
    from streamer.config import load_config
    from streamer.service import host as host_module
    from streamer.service.host import least_used_slot

    monkeypatch.setattr(host_module, "launch_host", lambda cfg: "h0")
    monkeypatch.setattr(host_module.ray, "kill", lambda handle: None)
    pool = HostPool(load_config(overrides={"service": {"streams_per_host": 8, "hosts": 1},
                                           "detector": {"every_frames": 10}}))
    placed = {s: pool.place(s) for s in "abcd"}
    assert {h.host for h in placed.values()} == {"h0"}                   # four streams on one host ...
    assert [placed[s].slot for s in "abcd"] == [0, 5, 2, 7]              # ... on four slots, spread apart
    placed["b"].release()
    assert pool.place("e").slot == 4                # two frames from 2 and 7 (as 5 would be): the lower
    assert [least_used_slot(list(range(10)) + [0], 10), least_used_slot([0, 0], 1)] == [5, 0]
    off = HostPool(load_config(overrides={"detector": {"phase": "off"}}))
    assert off.place("x").slot is None
