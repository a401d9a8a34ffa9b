"""The data contract: `FaceRecord` (record.py), its Arrow/Parquet encoding (arrow.py) and
Redis encoding (redis_codec.py), the version they share (version.py), the stream events
(events.py), the sinks that write them (sinks/) and the readers (dataset.py, tail.py)
that read them back."""
