"""The contract every sink meets, so a session can fan records out without knowing
where they go."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from streamer.data.schema import FaceRecord


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


@runtime_checkable
class Sink(Protocol):
    """Records in frame order go in through ``write``; lifecycle events through ``event``.

    ``stats`` is a plain dict of counters for progress reports and metrics.
    ``committed`` says what this stream already has in the sink's durable store (None:
    nothing, or nothing the sink can vouch for); a session resumes after a crash only
    from a point every sink holds.
    """

    @property
    def stats(self) -> dict[str, Any]: ...

    def write(self, records: list[FaceRecord]) -> None: ...

    def event(self, kind: str, **info: Any) -> None: ...

    def flush(self) -> object: ...  # RedisSink says whether everything was sent

    def committed(self) -> Committed | None: ...

    def close(self) -> None: ...
