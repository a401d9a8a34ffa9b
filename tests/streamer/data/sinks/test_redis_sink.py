"""RedisSink against a real redis-server: order, trimming, events, outages, bad URLs."""
from __future__ import annotations

import socket
import threading
import time

import pytest
import redis

from streamer.config import RedisConfig
from streamer.data.events import EventKind, decode_event
from streamer.data.redis_codec import decode_redis, events_key, stream_key
from streamer.data.sinks import RedisSink, SinkError
from streamer.sources.urls import redact


def _entries(url: str, key: str) -> list[tuple[bytes, dict]]:
    client = redis.Redis.from_url(url)
    try:
        return client.xrange(key)
    finally:
        client.close()


def _ids(entries) -> list[tuple[int, int]]:
    return [tuple(int(p) for p in entry_id.split(b"-")) for entry_id, _ in entries]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_records_in_equal_entries_out(redis_url, make_records, assert_records_equal):
    records = make_records(100, faces=3)
    sink = RedisSink(RedisConfig(key_prefix="t"), "cam1", redis_url)
    for i in range(0, len(records), 9):          # frames split across writes
        sink.write(records[i:i + 9])
    sink.close()
    entries = _entries(redis_url, stream_key("t", "cam1"))
    assert_records_equal([decode_redis(f) for _, f in entries], records)
    ids = _ids(entries)
    assert ids[:4] == [(1, 0), (1, 1), (1, 2), (2, 0)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert sink.stats.published == 300 and sink.stats.buffered == 0 and sink.stats.dropped == 0
    assert sink.stats.to_json() == {"published": 300, "events": 0, "duplicates": 0, "dropped": 0, "errors": 0,
                                    "last_error": None, "buffered": 0}
    assert list(sink.stats.to_json()) == ["published", "events", "duplicates", "dropped", "errors", "last_error",
                                          "buffered"]


def test_records_are_ordered_by_track_within_a_frame(redis_url, make_records):
    records = make_records(2, faces=3)
    sink = RedisSink(RedisConfig(key_prefix="t"), "cam1", redis_url)
    sink.write(list(reversed(records)))
    sink.close()
    decoded = [decode_redis(f) for _, f in _entries(redis_url, stream_key("t", "cam1"))]
    assert [(r.frame_index, r.track_id) for r in decoded] == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]
    backwards = RedisSink(RedisConfig(key_prefix="t2"), "cam1", redis_url)
    backwards.write(records[3:])
    with pytest.raises(ValueError, match="frame order"):
        backwards.write(records[:3])
    with pytest.raises(ValueError, match="stream"):
        RedisSink(RedisConfig(key_prefix="t2"), "cam2", redis_url).write(records)


def test_rewriting_the_same_records_is_idempotent(redis_url, make_records):
    records = make_records(30, faces=2)
    cfg = RedisConfig(key_prefix="t")
    first = RedisSink(cfg, "cam1", redis_url)
    first.write(records[:40])
    first.close()
    replay = RedisSink(cfg, "cam1", redis_url)   # e.g. a restarted session resending
    replay.write(records)
    replay.close()
    assert len(_entries(redis_url, stream_key("t", "cam1"))) == 60
    assert replay.stats.duplicates == 40 and replay.stats.published == 20


def test_maxlen_trims_approximately(redis_url, make_records):
    sink = RedisSink(RedisConfig(key_prefix="t", maxlen=200), "cam1", redis_url)
    sink.write(make_records(1000, faces=1))
    sink.close()
    entries = _entries(redis_url, stream_key("t", "cam1"))
    assert 200 <= len(entries) < 1000
    assert _ids(entries)[-1] == (1000, 0)       # the newest entries are the ones kept


def test_events_stream(redis_url, make_records):
    sink = RedisSink(RedisConfig(key_prefix="t"), "cam1", redis_url)
    sink.event(EventKind.STARTED, source="video.mp4")
    sink.write(make_records(3))
    sink.event(EventKind.ENDED, frames=3)
    sink.close()
    events = [decode_event(f) for _, f in _entries(redis_url, events_key("t"))]
    assert [(e["kind"], e["stream_id"]) for e in events] == [("started", "cam1"), ("ended", "cam1")]
    assert events[0]["source"] == "video.mp4" and events[1]["frames"] == 3
    assert (sink.stats.events, sink.stats.published) == (2, 6)   # events are not records
    # the started event names the numbers of the records that follow; ended does not repeat them
    assert events[0]["pose_fields"] == ["yaw", "pitch", "roll", "tx", "ty", "scale"]
    assert len(events[0]["blendshape_names"]) == 53 and events[0]["blendshape_names"][26] == "jawOpen"
    assert events[0]["emotion_classes"][3] == "happy" and "blendshape_names" not in events[1]


def test_committed_is_the_top_frame_and_highest_track(redis_url, make_records):
    sink = RedisSink(RedisConfig(key_prefix="t"), "cam1", redis_url)
    assert sink.committed() is None
    records = make_records(12, faces=3)
    sink.write(records)
    sink.close()
    committed = RedisSink(RedisConfig(key_prefix="t"), "cam1", redis_url).committed()
    assert (committed.frame_index, committed.pts, committed.max_track_id) == (11, records[-1].pts, 3)


def test_redis_restarted_twice_mid_write_keeps_every_record_once_in_order(
    redis_server, redis_url, make_records, assert_records_equal
):
    records = make_records(1500, faces=2)
    chunks = [records[i:i + 4] for i in range(0, len(records), 4)]
    sink = RedisSink(RedisConfig(key_prefix="t", retry_s=0.05, connect_timeout_s=1.0), "cam1", redis_url)
    trigger = threading.Semaphore(0)

    def outages():
        for _ in range(2):
            trigger.acquire()
            redis_server.restart(keep_data=True, down_s=0.3)

    restarter = threading.Thread(target=outages)
    restarter.start()
    # writes paced over ~1.5 s; outages start at 1/3 and 2/3, so both fall mid-write
    t0, interval, slowest = time.monotonic(), 1.5 / len(chunks), 0.0
    for i, chunk in enumerate(chunks):
        if i in (len(chunks) // 3, 2 * len(chunks) // 3):
            trigger.release()
        time.sleep(max(0.0, t0 + i * interval - time.monotonic()))
        started = time.monotonic()
        sink.write(chunk)
        slowest = max(slowest, time.monotonic() - started)
    restarter.join()
    assert sink.flush(timeout=10)
    sink.close()

    stats = sink.stats
    assert stats.errors >= 2, stats               # both outages were seen...
    assert stats.dropped == 0, stats              # ...and nothing was lost
    assert slowest < 2.5                          # the caller was never held long
    entries = _entries(redis_url, stream_key("t", "cam1"))
    ids = _ids(entries)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert_records_equal([decode_redis(f) for _, f in entries], records)


def test_buffer_bound_drops_oldest_while_redis_is_away(make_records):
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    sink = RedisSink(RedisConfig(buffer_records=10, retry_s=0.05), "cam1", url)
    t0 = time.monotonic()
    sink.write(make_records(20, faces=1))
    assert time.monotonic() - t0 < 2.5
    stats = sink.stats
    assert stats.buffered == 10 and stats.dropped == 10 and stats.errors >= 1 and stats.published == 0
    assert stats.last_error is not None
    assert "refused" in stats.last_error.lower() or "connect" in stats.last_error.lower()
    sink.close(timeout=0.1)
    assert sink.stats.dropped == 20


def test_unreachable_url_fails_fast_with_sink_error():
    url = f"redis://user:s3cret@127.0.0.1:{_closed_port()}/0"
    t0 = time.monotonic()
    with pytest.raises(SinkError, match=r"cannot reach Redis at redis://\*\*\*@127\.0\.0\.1") as err:
        RedisSink.check(url, timeout=0.5)
    assert time.monotonic() - t0 < 2.0
    assert "s3cret" not in str(err.value)
    # a non-routable address waits at most about the timeout
    t0 = time.monotonic()
    with pytest.raises(SinkError):
        RedisSink.check("redis://10.255.255.1:6379/0", timeout=0.5)
    assert time.monotonic() - t0 < 2.0
    with pytest.raises(SinkError):
        RedisSink.check("http://localhost/", timeout=0.5)


def test_check_passes_on_a_live_server(redis_url):
    RedisSink.check(redis_url, timeout=1.0)


def test_redact_url():
    assert redact("rediss://:pw@host:6380/1") == "rediss://***@host:6380/1"
    assert redact("redis://u:pw@host/0?password=pw2&db=1") == "redis://***@host/0?password=***&db=***"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"
