"""Where FaceRecords go: Redis Streams for live consumers, Parquet for offline analysis."""
from streamer.sinks.base import Sink, SinkError
from streamer.sinks.parquet_sink import ParquetSink
from streamer.sinks.redis_sink import RedisSink

__all__ = ["Sink", "SinkError", "RedisSink", "ParquetSink"]
