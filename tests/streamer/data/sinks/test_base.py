"""SinkStats: one meaning of ``published`` for every sink, each sink's JSON names kept."""
from __future__ import annotations

import dataclasses

from streamer.data.sinks.base import SinkStats, published_everywhere
from streamer.data.sinks.parquet_sink import ParquetStats
from streamer.data.sinks.redis_sink import RedisStats


def test_every_counter_is_in_the_json_once_under_its_sinks_name():
    for stats in (SinkStats(), ParquetStats(), RedisStats()):
        assert sorted(stats._JSON_ORDER) == sorted(f.name for f in dataclasses.fields(stats))
    assert ParquetStats(published=7, files=1, last_file="p", buffered=2).to_json() == {
        "rows_written": 7, "files": 1, "last_file": "p", "skipped": 0, "buffered": 2}
    assert RedisStats(published=7, events=2, last_error="down").to_json() == {
        "published": 7, "events": 2, "duplicates": 0, "dropped": 0, "errors": 0, "last_error": "down", "buffered": 0}
    assert SinkStats(published=3, buffered=1).to_json() == {"published": 3, "buffered": 1}


def test_a_stream_published_what_every_sink_published():
    assert published_everywhere([]) == 0
    assert published_everywhere([ParquetStats(published=40)]) == 40
    assert published_everywhere([RedisStats(published=40)]) == 40
    assert published_everywhere([RedisStats(published=40), ParquetStats(published=40)]) == 40
    # Redis dropped 5 in an outage: they are not in every sink
    assert published_everywhere([RedisStats(published=35, dropped=5), ParquetStats(published=40)]) == 35
