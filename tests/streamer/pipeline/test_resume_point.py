"""Where a restarted run carries on, read off real sinks: a file after what every sink
holds, a camera after what any sink holds (its new frames must not fall at or below
Redis's top entry)."""
from __future__ import annotations

from streamer.config import ParquetConfig, RedisConfig
from streamer.data.sinks.parquet_sink import ParquetSink
from streamer.data.sinks.redis_sink import RedisSink
from streamer.pipeline.session import _resume_point


def test_a_file_resumes_after_every_sink_a_camera_after_any(redis_url, tmp_path, make_records):
    records = make_records(10, faces=1, stream_id="cam")
    redis_sink = RedisSink(RedisConfig(), "cam", redis_url)
    parquet_cfg = ParquetConfig(out=str(tmp_path))
    redis_sink.write(records)                      # frames 0-9 in Redis
    assert redis_sink.flush()
    empty = ParquetSink(parquet_cfg, "cam")        # nothing in Parquet yet (its buffer lost in a crash)
    assert _resume_point([redis_sink, empty]) is None
    assert _resume_point([redis_sink, empty], live=True).frame_index == 9
    writer = ParquetSink(parquet_cfg, "cam")
    writer.write(records[:5])                      # frames 0-4 in Parquet
    writer.close()
    parquet = ParquetSink(parquet_cfg, "cam")      # a new run's sink reads what is there
    file_point, live_point = _resume_point([redis_sink, parquet]), _resume_point([redis_sink, parquet], live=True)
    assert (file_point.frame_index, live_point.frame_index) == (4, 9)
    assert file_point.max_track_id == live_point.max_track_id == 1
    assert _resume_point([], live=True) is None
    redis_sink.close()
