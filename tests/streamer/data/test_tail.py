"""``tail`` against a real Redis: every record once, in order; from the start on every run by
default, resumable with a consumer group."""
import threading

import redis

from streamer.config import RedisConfig
from streamer.data.events import EventKind
from streamer.data.sinks.redis_sink import RedisSink
from streamer.data.tail import DEFAULT_GROUP, final_event, prefix_for, stream_end, tail


def _publish(url, records, final=True, stream_id="cam1", prefix="facestream"):
    sink = RedisSink(RedisConfig(key_prefix=prefix), stream_id, url)
    sink.event(EventKind.STARTED)
    sink.write(records)
    if final:
        sink.event(EventKind.ENDED, frames=records[-1].frame_index + 1)
    sink.close()


def test_tail_reads_every_record_in_order_then_stops_at_the_final_event(redis_url, make_records,
                                                                        assert_records_equal):
    records = make_records(300, faces=2)
    _publish(redis_url, records)
    got = []
    assert tail(redis_url, "cam1", got.append, block_ms=200) == 600
    assert_records_equal(got, records)


def test_every_run_reads_from_the_start_and_leaves_nothing_in_redis(redis_url, make_records,
                                                                    assert_records_equal):
    records = make_records(120, faces=1)
    _publish(redis_url, records)
    runs = [[], [], []]
    assert [tail(redis_url, "cam1", got.append, block_ms=100) for got in runs] == [120, 120, 120]
    for got in runs:   # a re-run, or a second reader on the same host, sees every record again
        assert_records_equal(got, records)
    assert redis.Redis.from_url(redis_url).xinfo_groups("facestream:stream:cam1") == []


def test_a_group_resumes_where_it_left_off_without_duplicates(redis_url, make_records, assert_records_equal):
    records = make_records(400, faces=1)
    _publish(redis_url, records[:250], final=False)
    first = []
    # an unfinished stream: the first tail stops on request once it has read what is there
    n = tail(redis_url, "cam1", first.append, group=DEFAULT_GROUP, block_ms=100,
             should_stop=lambda: len(first) >= 250)
    assert n == 250
    sink = RedisSink(RedisConfig(), "cam1", redis_url)
    sink.write(records[250:])
    sink.event(EventKind.ENDED)
    sink.close()
    second = []
    assert tail(redis_url, "cam1", second.append, group=DEFAULT_GROUP, block_ms=100) == 150
    assert_records_equal(first + second, records)
    # a different group starts from the beginning; two consumers of one group share the records
    third = []
    assert tail(redis_url, "cam1", third.append, group="analysis", block_ms=100) == 400
    assert tail(redis_url, "cam1", third.append, group="analysis", consumer="other", block_ms=100) == 0


def test_records_delivered_but_not_taken_are_delivered_again(redis_url, make_records, assert_records_equal):
    records = make_records(50, faces=1)
    _publish(redis_url, records)
    seen = []

    def crash_at_20(rec):
        if len(seen) == 20:
            raise RuntimeError("consumer died")
        seen.append(rec)

    try:
        tail(redis_url, "cam1", crash_at_20, group=DEFAULT_GROUP, block_ms=100)
    except RuntimeError:
        pass
    pending = redis.Redis.from_url(redis_url).xpending("facestream:stream:cam1", "facestream-tail")
    assert pending["pending"] == 50   # read as one batch, none acknowledged
    again = []
    assert tail(redis_url, "cam1", again.append, group=DEFAULT_GROUP, block_ms=100) == 50
    assert_records_equal(again, records)


def test_the_prefix_is_the_servers_or_the_configs(redis_url, make_records, assert_records_equal, tmp_path):
    records = make_records(20, faces=1)
    _publish(redis_url, records, prefix="lab")
    config = tmp_path / "ray_config.yaml"
    config.write_text("redis:\n  key_prefix: lab\n")
    assert prefix_for("cam1", config=str(config)) == "lab"
    assert prefix_for("cam1", {"redis_stream": "lab:stream:cam1"}, config="absent.yaml") == "lab"
    got = []
    assert tail(redis_url, "cam1", got.append, prefix=prefix_for("cam1", config=str(config)), block_ms=100) == 20
    assert_records_equal(got, records)


def test_follow_waits_for_new_records_until_stopped(redis_url, make_records):
    records = make_records(30, faces=1)
    got, stop = [], threading.Event()
    t = threading.Thread(target=lambda: tail(redis_url, "cam1", got.append, follow=True, block_ms=100,
                                             should_stop=stop.is_set))
    t.start()
    _publish(redis_url, records)     # the final event does not end a follow
    for _ in range(100):
        if len(got) == 30:
            break
        threading.Event().wait(0.05)
    stop.set()
    t.join(5)
    assert not t.is_alive() and len(got) == 30


def test_lines_and_json_carry_the_emotion(make_records):
    import dataclasses
    import json

    import numpy as np

    from streamer.data.tail import record_json, record_line

    probs = np.array([0.05, 0.0, 0.05, 0.72, 0.1, 0.08, 0.0], np.float32)
    rec = dataclasses.replace(make_records(1)[0], emotion="happy", emotion_probs=probs,
                              emotion_probs_raw=np.full(7, np.nan, np.float32))
    assert "track 1  yaw" in record_line(rec) and " happy 0.72  " in record_line(rec)
    assert " happy" not in record_line(dataclasses.replace(rec, emotion=""))
    j = json.loads(json.dumps(record_json(rec), allow_nan=False))
    assert j["emotion"] == "happy" and j["emotion_probs"]["happy"] == 0.72 and j["emotion_probs_raw"] is None
    assert list(j["emotion_probs"]) == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    # pose and blendshapes by name, as in Parquet
    assert j["pose"]["yaw"] == round(float(rec.pose[0]), 6) and list(j["pose"])[-1] == "scale"
    assert j["blendshapes"]["jawOpen"] == round(float(rec.blendshapes[26]), 6) and len(j["blendshapes"]) == 53
    assert " jawOpen " in record_line(dataclasses.replace(rec, blendshapes=np.eye(53, dtype=np.float32)[26]))
    # the person beside the track, where there is one
    assert "track 1 person 4  yaw" in record_line(dataclasses.replace(rec, person_id=4))
    assert json.loads(json.dumps(record_json(dataclasses.replace(rec, person_id=4))))["person_id"] == 4


def test_the_end_of_a_stream_is_its_latest_final_event_and_says_why_it_failed(redis_url, make_records):
    records = make_records(10, faces=1)
    sink = RedisSink(RedisConfig(), "cam1", redis_url)
    sink.event(EventKind.STARTED)
    sink.write(records)
    sink.event(EventKind.FAILED, error="SourceUnreachable: rtsp://cam/x: unreachable for 60 s")
    sink.close()
    _publish(redis_url, make_records(3, faces=1, stream_id="cam2"), stream_id="cam2")   # another stream's end
    got = []
    assert tail(redis_url, "cam1", got.append, block_ms=100) == 10
    end = stream_end(redis_url, "facestream", "cam1")
    assert end is not None and end["kind"] == "failed" and end["error"].startswith("SourceUnreachable: ")
    # restarted under the same id: its old end is not this run's
    sink = RedisSink(RedisConfig(), "cam1", redis_url)
    sink.event(EventKind.STARTED)
    sink.close()
    client = redis.Redis.from_url(redis_url)
    assert final_event(client, "facestream", "cam1") is None
    assert final_event(client, "facestream", "cam2")["kind"] == "ended"
    assert final_event(client, "facestream", "nobody") is None
    # a stream whose final event never came ends when the caller's judge says so
    assert tail(redis_url, "cam1", got.append, block_ms=100, ended=lambda: True) == 10
