"""The events stream read back (``facestream events``) against a real Redis."""
from __future__ import annotations

import json
import re
import threading

import redis

from streamer.config import RedisConfig
from streamer.data.event_log import LoggedEvent, read_events
from streamer.data.events import EventKind, encode_event
from streamer.data.sinks.redis_sink import RedisSink


def _events(url: str, stream_id: str, *kinds_and_info: tuple[EventKind, dict]) -> None:
    sink = RedisSink(RedisConfig(), stream_id, url)
    for kind, info in kinds_and_info:
        sink.event(kind, **info)
    sink.close()


def test_what_is_there_in_order_by_stream_and_without_the_skipped_kinds(redis_url):
    _events(redis_url, "cam1", (EventKind.STARTED, {"url": "rtsp://cam/x", "fps": 25.0}),
            (EventKind.PROGRESS, {"frames": 10}),
            (EventKind.RECONNECTING, {"attempt": 1, "delay_s": 0.5, "error": "Connection refused"}))
    _events(redis_url, "cam2", (EventKind.ENDED, {"frames": 3}))
    _events(redis_url, "cam1", (EventKind.FAILED, {"error": "SourceUnreachable: unreachable for 60 s",
                                                   "seconds": 61.23456, "lag_s": None, "sinks": {"RedisSink": {}}}))
    got: list[LoggedEvent] = []
    assert read_events(redis_url, got.append) == 5
    assert [(e.stream_id, e.kind) for e in got] == [("cam1", "started"), ("cam1", "progress"),
                                                   ("cam1", "reconnecting"), ("cam2", "ended"), ("cam1", "failed")]
    mine: list[LoggedEvent] = []
    assert read_events(redis_url, mine.append, stream_id="cam1", skip=(EventKind.PROGRESS,)) == 3
    assert [e.kind for e in mine] == ["started", "reconnecting", "failed"]
    # a line: time (UTC, ms), stream, kind, details; the schema names of `started` left out
    started, reconnecting, failed = (e.line() for e in mine)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 cam1 started url=rtsp://cam/x fps=25.0",
                        started), started
    assert reconnecting.endswith('reconnecting attempt=1 delay_s=0.5 error="Connection refused"')
    assert failed.endswith('cam1 failed error="SourceUnreachable: unreachable for 60 s" seconds=61.235')
    as_json = json.loads(json.dumps(mine[2].to_json()))
    assert as_json["kind"] == "failed" and as_json["stream_id"] == "cam1" and as_json["error"].startswith("Source")
    assert isinstance(as_json["time"], float) and as_json["sinks"] == {"RedisSink": {}} and as_json["lag_s"] is None
    assert read_events(redis_url, got.append, stream_id="nobody") == 0


def test_more_than_one_batch_and_an_empty_stream(redis_url):
    assert read_events(redis_url, lambda e: None) == 0    # no events stream yet
    client = redis.Redis.from_url(redis_url)
    for i in range(1203):   # one XADD each: several entries may share a millisecond
        client.xadd("facestream:events", encode_event(EventKind.PROGRESS, "cam1", frames=i))
    frames: list[int] = []
    assert read_events(redis_url, lambda e: frames.append(e.info["frames"])) == 1203
    assert frames == list(range(1203))


def test_follow_waits_for_new_events_until_stopped(redis_url):
    _events(redis_url, "cam1", (EventKind.STARTED, {}))
    got: list[LoggedEvent] = []
    stop = threading.Event()
    t = threading.Thread(target=lambda: read_events(redis_url, got.append, follow=True, block_ms=100,
                                                    should_stop=stop.is_set))
    t.start()
    _events(redis_url, "cam1", (EventKind.ENDED, {}))   # a final event does not end a follow
    _events(redis_url, "cam2", (EventKind.STARTED, {}))
    for _ in range(100):
        if len(got) == 3:
            break
        threading.Event().wait(0.05)
    stop.set()
    t.join(5)
    assert not t.is_alive() and [(e.stream_id, e.kind) for e in got] == [
        ("cam1", "started"), ("cam1", "ended"), ("cam2", "started")]
