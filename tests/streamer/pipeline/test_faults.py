"""Faults during a stream: a killed session, a killed replica, Redis restarted five times.

Real Ray actors are killed the way a crash kills them (``ray.kill(..., no_restart=False)``
takes the process down and lets Ray restart it); Redis is a real server shut down and
started again. In every case the outputs must hold every frame exactly once, in order.
"""
from __future__ import annotations

import threading
import time
from functools import partial

import numpy as np
import pytest
import ray
import redis

from streamer.data.dataset import read_records
from streamer.data.events import decode_event
from streamer.data.redis_codec import decode_redis
from streamer.data.sinks.parquet_sink import ParquetSink
from streamer.data.sinks.redis_sink import RedisSink
from streamer.pipeline.session import launch
from streamer.pipeline.status import StreamProgress

LONG_FRAMES = 150


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """One real face moving across 150 frames (6 s at 25 fps)."""
    from conftest import _face_patches, encode_face_video

    return encode_face_video(tmp_path_factory.mktemp("long") / "long.mp4", _face_patches("obama-720p.jpg", 110),
                             frames=LONG_FRAMES)


@pytest.fixture
def fault_config(pipeline_config):
    pipeline_config.parquet.rows_per_file = 20      # parts committed as the stream goes
    pipeline_config.redis.retry_s = 0.1
    pipeline_config.redis.connect_timeout_s = 1.0
    return pipeline_config


def _sinks(cfg, stream_id, url):
    return [partial(RedisSink, cfg.redis, stream_id, url), partial(ParquetSink, cfg.parquet, stream_id)]


def _wait_frames(session, at_least: int, timeout_s: float = 120) -> StreamProgress:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        p = ray.get(session.progress.remote())
        if p.frames >= at_least:
            return p
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} frames in {timeout_s} s")


def _redis_records(url, stream_id):
    client = redis.Redis.from_url(url)
    entries = client.xrange(f"facestream:stream:{stream_id}")
    ids = [tuple(int(x) for x in i.decode().split("-")) for i, _ in entries]
    return ids, [decode_redis(f) for _, f in entries]


def _events(url, stream_id):
    client = redis.Redis.from_url(url)
    events = [decode_event(f) for _, f in client.xrange("facestream:events")]
    return [e for e in events if e["stream_id"] == stream_id]


def _assert_every_frame_once(url, out, stream_id, frames):
    ids, records = _redis_records(url, stream_id)
    assert ids == sorted(set(ids)), "Redis ids not strictly increasing"
    assert [r.frame_index for r in records] == list(range(frames))
    parquet = read_records(out, stream_id)
    assert sorted(r.frame_index for r in parquet) == list(range(frames)), "Parquet rows missing or doubled"


def test_a_killed_session_is_restarted_and_resumes_after_its_last_committed_frame(
        ray_runtime, shared_replicas, fault_config, redis_url, long_video):
    out = fault_config.parquet.out
    session = launch("crash", str(long_video.path), fault_config, shared_replicas,
                     _sinks(fault_config, "crash", redis_url))
    run = session.run.remote()
    before = _wait_frames(session, 50)
    ray.kill(session, no_restart=False)            # the process dies; Ray restarts the actor
    summary = ray.get(run, timeout=180)            # ... and sends run() again
    assert summary.state == "ended"
    resumed = summary.resumed_after_frame
    assert resumed is not None and 20 <= resumed < LONG_FRAMES
    assert summary.frames == LONG_FRAMES - resumed - 1    # only what was left was processed
    kinds = [e["kind"] for e in _events(redis_url, "crash")]
    assert kinds.count("started") == 2 and "resumed" in kinds and kinds[-1] == "ended"
    _assert_every_frame_once(redis_url, out, "crash", LONG_FRAMES)
    # the resumed session's tracks never reuse an id of the first one
    parquet = read_records(out, "crash")
    first = {r.track_id for r in parquet if r.frame_index <= resumed}
    later = {r.track_id for r in parquet if r.frame_index > resumed}
    assert not first & later and before.frames >= 50
    print(f"\nFIGURE session killed at frame ~{before.frames}: restarted, resumed after frame {resumed}, "
          f"{summary.frames} frames re-run; Redis {len(_redis_records(redis_url, 'crash')[0])} entries, "
          f"Parquet {len(parquet)} rows for {LONG_FRAMES} frames")
    ray.kill(session)


def test_a_killed_regressor_replica_is_restarted_and_no_frame_is_lost(ray_runtime, fault_config, redis_url,
                                                                      long_video, tiny_checkpoint):
    from streamer.pipeline.replicas import Replicas

    replicas = Replicas.start(fault_config, str(tiny_checkpoint))
    replicas.ready()
    try:
        session = launch("replica-crash", str(long_video.path), fault_config, replicas,
                         _sinks(fault_config, "replica-crash", redis_url))
        run = session.run.remote()
        _wait_frames(session, 40)
        ray.kill(replicas.regressors[0], no_restart=False)
        ray.kill(replicas.detectors[0], no_restart=False)
        summary = ray.get(run, timeout=180)
        assert summary.state == "ended" and summary.frames == LONG_FRAMES
        assert summary.resumed_after_frame is None
        print(f"\nFIGURE regressor + detector killed mid-stream: {summary.frames}/{LONG_FRAMES} frames, "
              f"Redis {summary.sinks['RedisSink']['published']} records published once")
        _assert_every_frame_once(redis_url, fault_config.parquet.out, "replica-crash", LONG_FRAMES)
        ray.kill(session)
    finally:
        replicas.stop()


def test_redis_restarted_five_times_mid_stream_loses_and_doubles_nothing(
        ray_runtime, shared_replicas, fault_config, redis_server, redis_url, long_video):
    session = launch("outages", str(long_video.path), fault_config, shared_replicas,
                     _sinks(fault_config, "outages", redis_url))
    run = session.run.remote()
    _wait_frames(session, 5)
    restarts = []

    def bounce():
        for _ in range(5):
            redis_server.restart(keep_data=True, down_s=0.3)
            restarts.append(time.monotonic())
            time.sleep(0.4)

    t = threading.Thread(target=bounce)
    t.start()
    summary = ray.get(run, timeout=180)
    t.join(60)
    assert len(restarts) == 5
    assert summary.state == "ended" and summary.frames == LONG_FRAMES
    redis_stats = summary.sinks["RedisSink"]
    assert redis_stats["dropped"] == 0 and redis_stats["buffered"] == 0
    _assert_every_frame_once(redis_url, fault_config.parquet.out, "outages", LONG_FRAMES)
    ids, records = _redis_records(redis_url, "outages")
    assert all(np.isfinite(r.expression).all() for r in records)
    print(f"\nFIGURE Redis restarted 5 times: {len(records)} entries for {LONG_FRAMES} frames, "
          f"{redis_stats['errors']} failed writes retried, {redis_stats['duplicates']} duplicates refused by id, "
          f"0 dropped")
    ray.kill(session)
