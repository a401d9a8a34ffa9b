"""A stream's ``published`` counts the records its sinks wrote, whichever sinks it has.

The summary is read off a session whose sinks took records (no Ray, no models: what is
under test is how the session sums its sinks' counters into ``published`` and ``sinks``).
"""
from __future__ import annotations

from functools import partial

import pytest

from streamer.config import load_config
from streamer.data.sinks import ParquetSink, RedisSink
from streamer.pipeline.session import StreamSession


def _summary(cfg, factories, records):
    session = StreamSession("cam1", "unused.mp4", cfg, replicas=None, sinks=factories)
    try:
        session._sinks = [make() for make in factories]   # as run() makes them
        for sink in session._sinks:
            sink.write(records)
            sink.flush()
        summary = session._summary()
        for sink in session._sinks:
            sink.close()
        return summary
    finally:
        session.close()


@pytest.mark.parametrize("which", ["parquet", "redis", "both"])
def test_published_is_the_records_written_with_any_sinks(which, tmp_path, redis_url, make_records):
    cfg = load_config(overrides={"parquet": {"out": str(tmp_path)}})
    factories = {"parquet": [partial(ParquetSink, cfg.parquet, "cam1")],
                 "redis": [partial(RedisSink, cfg.redis, "cam1", redis_url)]}
    factories["both"] = factories["redis"] + factories["parquet"]
    records = make_records(20, faces=2)
    summary = _summary(cfg, factories[which], records)
    assert summary.published == 40
    # each sink's counters keep their names in summary.json and the final event
    if which != "redis":
        assert summary.sinks["ParquetSink"]["rows_written"] == 40 and "published" not in summary.sinks["ParquetSink"]
    if which != "parquet":
        assert summary.sinks["RedisSink"]["published"] == 40
    assert summary.to_json()["published"] == 40


def test_published_counts_only_what_every_sink_holds(tmp_path, make_records):
    """Redis away for the whole run: Parquet has every record, a Redis reader none."""
    cfg = load_config(overrides={"parquet": {"out": str(tmp_path)},
                                 "redis": {"connect_timeout_s": 0.2, "retry_s": 0.05}})
    factories = [partial(RedisSink, cfg.redis, "cam1", "redis://127.0.0.1:9/0"),
                 partial(ParquetSink, cfg.parquet, "cam1")]
    summary = _summary(cfg, factories, make_records(5, faces=2))
    assert summary.published == 0
    assert summary.sinks["ParquetSink"]["rows_written"] == 10 and summary.sinks["RedisSink"]["published"] == 0
