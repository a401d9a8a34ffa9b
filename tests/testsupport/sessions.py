"""One stream session run to its end in the test cluster, its records read back from the
Parquet it wrote: what the session tests compare, without the service around it."""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import ray

from streamer.config import Config
from streamer.data.dataset import read_records
from streamer.data.record import FaceRecord
from streamer.data.sinks import ParquetSink
from streamer.pipeline.session import launch


def records_of_a_run(path: Path, cfg: Config, replicas: Any, stream_id: str = "cam") -> list[FaceRecord]:
    """Run ``path`` through a session with ``cfg`` (its ``parquet.out`` receives the
    records) on ``replicas``; the records it wrote, in frame order."""
    session = launch(stream_id, str(path), cfg, replicas, [partial(ParquetSink, cfg.parquet, stream_id)])
    try:
        ray.get(session.run.remote())
    finally:
        ray.kill(session)
    return read_records(cfg.parquet.out, stream_id)
