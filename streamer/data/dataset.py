"""Read what ParquetSink wrote: every complete part of every stream under ``out/records``.

Hidden temp files (``.part-*.tmp``, left by a crash mid-write) are skipped, as every
Parquet reader skips them. Each part is read in the layout it was written in and brought
to this version's (``arrow.upgrade_table``), so a stream written partly before an
upgrade and partly after reads as one table. Rows come back sorted by (stream_id,
frame_index, track_id), whatever order the files were listed in.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from streamer.data.arrow import ARROW_SCHEMA, table_to_records, upgrade_table
from streamer.data.record import FaceRecord

_ORDER = [("stream_id", "ascending"), ("frame_index", "ascending"), ("track_id", "ascending")]


def _parts(out_dir: str | Path) -> list[ds.ParquetFileFragment]:
    root = Path(out_dir) / "records"
    if not root.is_dir():
        raise FileNotFoundError(f"no facestream dataset at {root} (expected {root}/stream=<id>/part-*.parquet)")
    return list(ds.dataset(root, format="parquet", ignore_prefixes=[".", "_"]).get_fragments())


def _common_metadata(tables: list[pa.Table]) -> dict[bytes, bytes]:
    """Schema metadata on which all parts agree (e.g. one face model for all streams)."""
    common: dict[bytes, bytes] | None = None
    for table in tables:
        meta = table.schema.metadata or {}
        common = dict(meta) if common is None else {k: v for k, v in common.items() if meta.get(k) == v}
    return ARROW_SCHEMA.metadata if common is None else common


def _read(parts: list[ds.ParquetFileFragment], stream_id: str | None) -> pa.Table:
    where = None if stream_id is None else ds.field("stream_id") == stream_id
    tables = [upgrade_table(part.to_table(schema=part.physical_schema, filter=where)) for part in parts]
    if not tables:
        return ARROW_SCHEMA.empty_table()
    table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables]).sort_by(_ORDER)
    return table.replace_schema_metadata(_common_metadata(tables))


def read_dataset(out_dir: str | Path) -> pa.Table:
    """All records of all streams as one table in ARROW_SCHEMA (older parts upgraded)."""
    return _read(_parts(out_dir), None)


def read_records(out_dir: str | Path, stream_id: str | None = None) -> list[FaceRecord]:
    """FaceRecords of one stream (or all), in frame order."""
    return table_to_records(_read(_parts(out_dir), stream_id))
