"""The contract every sink meets, so a session can fan records out without knowing
where they go."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Protocol, runtime_checkable

from streamer.data.events import EventKind
from streamer.data.record import FaceRecord


class SinkError(RuntimeError):
    """A sink cannot do its job at all (e.g. its server is unreachable at start-up)."""


def check_stream(records: list[FaceRecord], stream_id: str) -> None:
    """A sink serves one stream; a record of another would land under the wrong key or
    partition, so refuse it outright."""
    for rec in records:
        if rec.stream_id != stream_id:
            raise ValueError(f"record of stream {rec.stream_id!r} written to the sink of stream {stream_id!r}")


@dataclass(frozen=True)
class Committed:
    """How far a sink's durable output of one stream goes: the last frame it holds, that
    frame's pts and the highest track id it has seen. A restarted session resumes after
    the frame every sink holds, with track ids above every id already used."""

    frame_index: int
    pts: float
    max_track_id: int


@dataclass
class SinkStats:
    """A sink's counters, for a stream's summary and its final event.

    ``published`` means the same for every sink: records this sink accepted and wrote
    (Redis: entries the server took; Parquet: rows in complete part files), so that a
    summary can compare sinks without knowing them. ``buffered``: accepted, not yet
    written. What else a sink counts is its own (a subclass's fields).

    :meth:`to_json` keeps the names each sink's counters have always had in summary.json
    and the final event (``_JSON_NAMES``: Parquet's ``published`` is ``rows_written``
    there), in the order its subclass lists them (``_JSON_ORDER``).
    """

    published: int = 0
    buffered: int = 0

    _JSON_ORDER: ClassVar[tuple[str, ...]] = ("published", "buffered")
    _JSON_NAMES: ClassVar[dict[str, str]] = {}

    def to_json(self) -> dict[str, Any]:
        return {self._JSON_NAMES.get(name, name): getattr(self, name) for name in self._JSON_ORDER}


def published_everywhere(stats: Iterable[SinkStats]) -> int:
    """Records that every sink published: a stream's ``published`` count. The fewest of
    any sink, because a record missing from one sink (Redis dropped it in an outage) is
    not where a reader of that sink looks; 0 without sinks."""
    return min((s.published for s in stats), default=0)


@runtime_checkable
class Sink(Protocol):
    """Records in frame order go in through ``write``; lifecycle events through ``event``.

    ``stats`` is a snapshot of the sink's counters (:class:`SinkStats`), for progress
    reports, summaries and metrics.
    ``committed`` says what this stream already has in the sink's durable store (None:
    nothing, or nothing the sink can vouch for); a session resumes after a crash only
    from a point every sink holds.
    """

    @property
    def stats(self) -> SinkStats: ...

    def write(self, records: list[FaceRecord]) -> None: ...

    def event(self, kind: EventKind, **info: Any) -> None: ...

    def flush(self) -> object: ...  # RedisSink says whether everything was sent

    def committed(self) -> Committed | None: ...

    def close(self) -> None: ...
