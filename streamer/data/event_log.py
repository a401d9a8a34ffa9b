"""``facestream events``: the events stream (``PREFIX:events``, shared by every stream) read
back, one :class:`LoggedEvent` per entry.

A reader of its own (plain XRANGE / XREAD, no consumer group): every run shows the
events from the start, and it changes nothing in Redis. Without ``follow`` it reads what
is there when it starts and returns; with ``follow`` it then waits for new events until
told to stop.
"""
from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Collection

import redis

from streamer.data.events import EventKind, decode_event
from streamer.data.redis_codec import events_key, stream_info

_READ_COUNT = 500
# what every `started` event repeats for Redis readers of the records: not news on a line
_SCHEMA_NAMES = frozenset(stream_info())


@dataclass(frozen=True)
class LoggedEvent:
    """One entry of the events stream: when, which stream, what kind, and what it says
    (``info``: the event's own fields, typed as written)."""

    time: float
    stream_id: str
    kind: EventKind | str          # a kind a newer writer added stays its string
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_fields(cls, fields: dict) -> LoggedEvent:
        event = decode_event(fields)
        return cls(event.pop("time"), event.pop("stream_id"), event.pop("kind"), event)

    def to_json(self) -> dict[str, Any]:
        """As ``decode_event`` reads it: time, stream_id, kind, then the event's fields."""
        return {"time": self.time, "stream_id": self.stream_id, "kind": str(self.kind), **self.info}

    def line(self) -> str:
        """``TIME STREAM KIND key=value ...``: UTC to the millisecond; numbers to three
        decimals, text with spaces quoted, lists as compact JSON. Nested objects (a final
        event's latency histogram and sink counters), nulls and the schema names of
        ``started`` are left to ``--json``: a line says what happened, not everything."""
        when = datetime.datetime.fromtimestamp(self.time, datetime.timezone.utc)
        details = " ".join(f"{key}={_value(value)}" for key, value in self.info.items()
                           if key not in _SCHEMA_NAMES and value is not None and not isinstance(value, dict))
        return f"{when.isoformat(timespec='milliseconds')} {self.stream_id} {self.kind} {details}".rstrip()


def _value(value: Any) -> str:
    if isinstance(value, float):
        return repr(round(value, 3))
    if isinstance(value, str) and value and not any(c.isspace() or c in "\"'" for c in value):
        return value
    return json.dumps(value, separators=(",", ":"))


def read_events(redis_url: str, on_event: Callable[[LoggedEvent], None], *, prefix: str = "facestream",
                stream_id: str | None = None, skip: Collection[str] = (), follow: bool = False,
                block_ms: int = 1000, should_stop: Callable[[], bool] = lambda: False) -> int:
    """Deliver the events (of ``stream_id`` only, when given; none of a kind in ``skip``)
    to ``on_event`` in order; returns how many were delivered.

    Raises ``redis.RedisError`` subclasses when Redis cannot be reached.
    """
    client = redis.Redis.from_url(redis_url, socket_timeout=max(5.0, block_ms / 1000 + 5),
                                  socket_connect_timeout=5.0)
    key, delivered = events_key(prefix), 0

    def deliver(entries: list) -> None:
        nonlocal delivered
        for _entry_id, fields in entries:
            event = LoggedEvent.from_fields(fields)
            if (stream_id is None or event.stream_id == stream_id) and event.kind not in skip:
                on_event(event)
                delivered += 1

    try:
        newest: Any = client.xrevrange(key, count=1)
        last = newest[0][0] if newest else "0-0"   # "what is there" ends here
        start = "-"
        while newest:
            batch: Any = client.xrange(key, min=start, max=last, count=_READ_COUNT)
            deliver(batch)
            if len(batch) < _READ_COUNT:
                break
            start = _after(batch[-1][0])
        while follow and not should_stop():
            reply: Any = client.xread({key: last}, count=_READ_COUNT, block=block_ms)
            entries = reply[0][1] if reply else []
            if entries:
                deliver(entries)
                last = entries[-1][0]
        return delivered
    finally:
        client.close()


def _after(entry_id: bytes | str) -> str:
    """The smallest entry id after ``entry_id`` (exclusive ranges need Redis 6.2)."""
    ms, seq = (entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")
    return f"{ms}-{int(seq) + 1}"
