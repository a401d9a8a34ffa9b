"""Write FaceRecords as a Hive-partitioned Parquet dataset, one part file at a time.

Layout: ``{out}/records/stream={id}/part-00000.parquet``, ``part-00001.parquet``, ...
The directory is ``stream=`` rather than ``stream_id=`` because the files keep their own
``stream_id`` column, and Hive readers reject a column that is both in the files and in
the path. A part appears only complete: it is written to ``.part-NNNNN.parquet.tmp``
(a leading dot, which pyarrow, pandas, polars and DuckDB skip) and renamed into place, so
a crash leaves at most a hidden temp file, never a truncated part. The partition's
directory is made with its first part: a stream that wrote no row (it failed to open,
or saw no face) leaves no empty ``stream=`` folder behind (``records/`` itself is made
at once, the dataset readers look for it).
"""
from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import pyarrow.parquet as pq

from streamer.config import ParquetConfig
from streamer.data.arrow import records_to_table
from streamer.data.events import EventKind
from streamer.data.record import FaceRecord
from streamer.data.sinks.base import Committed, SinkError, SinkStats, check_stream

_PART = re.compile(r"^part-(\d+)\.parquet$")


def partition_name(stream_id: str) -> str:
    """A path-safe directory value for stream_id; ids that needed changes get a short
    hash of the original so that two ids never share a directory."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", stream_id).lstrip(".") or "_"
    if safe != stream_id:
        safe = f"{safe}-{hashlib.sha1(stream_id.encode()).hexdigest()[:8]}"
    return safe


def _next_part_number(directory: Path) -> int:
    """Continue after existing parts, so a second run for the same stream never
    overwrites the first."""
    numbers = [int(m.group(1)) for p in directory.iterdir() if (m := _PART.match(p.name))]
    return max(numbers, default=-1) + 1


def _committed(directory: Path) -> Committed | None:
    """Last frame, its pts and the highest track id in the partition's complete parts."""
    parts = sorted(p for p in directory.iterdir() if _PART.match(p.name))
    if not parts:
        return None
    table = pq.ParquetDataset(parts).read(columns=["frame_index", "pts", "track_id"])
    if table.num_rows == 0:
        return None
    frames = table.column("frame_index").to_numpy()
    last = int(frames.argmax())
    return Committed(int(frames[last]), float(table.column("pts")[last].as_py()),
                     int(table.column("track_id").to_numpy().max()))


@dataclass
class ParquetStats(SinkStats):
    """published: rows in complete parts (``rows_written`` in JSON); files: parts
    written, the last one ``last_file``; skipped: records of frames a restarted
    session's earlier parts already held; buffered: rows waiting for the next part."""

    files: int = 0
    last_file: str | None = None
    skipped: int = 0

    _JSON_ORDER: ClassVar[tuple[str, ...]] = ("published", "files", "last_file", "skipped", "buffered")
    _JSON_NAMES: ClassVar[dict[str, str]] = {"published": "rows_written"}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ParquetSink:
    """Buffers records and writes a part every ``cfg.rows_per_file`` rows, at least
    every ``cfg.flush_every_s`` seconds, and on flush/close; ``metadata`` (face model
    version/hash, checkpoint, how the crops are read: ``facestream.reading``) goes into
    every file's schema beside the schema version. It is all known when the sink is
    made (``streamer.pipeline.backend``), so every part of a stream says the same.

    Parts already in the partition when the sink starts are a restarted session's
    earlier output: :meth:`committed` reports how far they go, and records of frames up
    to there are skipped, so a resumed stream never duplicates a row.
    """

    def __init__(self, cfg: ParquetConfig, stream_id: str, metadata: dict[str, str] | None = None):
        if cfg.rows_per_file < 1:
            raise ValueError(f"parquet.rows_per_file must be >= 1, got {cfg.rows_per_file}")
        self.cfg = cfg
        self.stream_id = stream_id
        self.metadata = dict(metadata or {})
        self.dir = Path(cfg.out) / "records" / f"stream={partition_name(stream_id)}"
        self.dir.parent.mkdir(parents=True, exist_ok=True)   # the dataset's root, which readers expect
        held = self.dir.is_dir()
        self._next_part = _next_part_number(self.dir) if held else 0
        self._committed = _committed(self.dir) if held else None
        self._buffer: list[FaceRecord] = []
        self._closed = False
        self._last_part_at = time.monotonic()
        self._counts = ParquetStats()

    def committed(self) -> Committed | None:
        return self._committed

    @property
    def stats(self) -> ParquetStats:
        return replace(self._counts, buffered=len(self._buffer))

    def write(self, records: list[FaceRecord]) -> None:
        """Buffer records; write full parts as soon as rows_per_file are waiting."""
        if self._closed:
            raise SinkError(f"ParquetSink for stream {self.stream_id!r} is closed")
        check_stream(records, self.stream_id)
        if self._committed is not None:
            done = self._committed.frame_index
            fresh = [r for r in records if r.frame_index > done]
            self._counts.skipped += len(records) - len(fresh)
            records = fresh
        self._buffer.extend(records)
        n = self.cfg.rows_per_file
        while len(self._buffer) >= n:
            self._write_part(self._buffer[:n])
            del self._buffer[:n]
        if self._buffer and time.monotonic() - self._last_part_at >= self.cfg.flush_every_s:
            self.flush()   # bounds what a crash can lose from a slow stream

    def event(self, kind: EventKind, **info: Any) -> None:
        """Events are not stored in Parquet: the dataset holds records only, lifecycle
        events live in the Redis events stream."""

    def flush(self) -> None:
        """Write whatever is buffered as a (possibly short) part."""
        if self._buffer:
            self._write_part(self._buffer)
            self._buffer = []

    def close(self) -> None:
        if not self._closed:
            self.flush()
            self._closed = True

    def _write_part(self, records: list[FaceRecord]) -> None:
        name = f"part-{self._next_part:05d}.parquet"
        final, tmp = self.dir / name, self.dir / f".{name}.tmp"
        table = records_to_table(records, self.metadata)
        if not self.dir.is_dir():
            self.dir.mkdir(parents=True, exist_ok=True)
            _fsync(self.dir.parent)   # the new directory's entry, as the rename below
        try:
            pq.write_table(table, tmp, compression=self.cfg.compression)
            _fsync(tmp)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync(self.dir)   # make the rename itself durable
        self._next_part += 1
        self._last_part_at = time.monotonic()
        self._counts.published += len(records)
        self._counts.files += 1
        self._counts.last_file = str(final)
