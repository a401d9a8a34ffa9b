"""Where FaceRecords go: Redis Streams for live consumers, Parquet for offline analysis."""
from streamer.data.sinks.base import Sink, SinkError
from streamer.data.sinks.parquet_sink import ParquetSink
from streamer.data.sinks.redis_sink import RedisSink

__all__ = ["Sink", "SinkError", "RedisSink", "ParquetSink"]
