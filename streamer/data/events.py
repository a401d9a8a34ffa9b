"""A stream's lifecycle events: their kinds, and their encoding on the Redis events stream.

Records say what a stream saw; events say what happened to the stream itself (it
started, resumed, cut, ended, lost its camera ...). A session hands them to every sink
(``Sink.event``); the Redis sink writes them to the events stream that all streams share
(``redis_codec.events_key``), where consumers such as ``facestream tail`` read them back.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from streamer.data.redis_codec import text, text_keys
from streamer.data.version import SCHEMA_VERSION, check_version


class EventKind(StrEnum):
    """What an event says happened. A ``StrEnum``: the value is the ``kind`` field of
    the entry on the events stream, as consumers have always read it.

    Three kinds share their value with a :class:`~streamer.pipeline.status.StreamState`
    (ended, stopped, failed): the event announces that the stream reached that state.
    """

    STARTED = "started"            # frames are about to flow; names the numbers (redis_codec.stream_info)
    RESUMED = "resumed"            # a restarted session carries on after what every sink holds
                                   # (cause: service_restart when the service had gone down)
    RESTARTED = "restarted"        # a stopped or failed stream started again on request (a new run)
    PROGRESS = "progress"          # counters so far, every session.progress_every_s
    CUT = "cut"                    # a hard shot cut at frame_index / pts ended every track
    PERSON = "person"              # a track was given its person: new, linked to an earlier
                                   # track's, or split off (streamer.persons.book.PersonEvent)
    ENDED = "ended"                # the source ran out
    STOPPED = "stopped"            # stopped on request
    FAILED = "failed"              # the session failed; the event says why
    RECONNECTING = "reconnecting"  # a live source lost its camera and tries again
    RECONNECTED = "reconnected"    # ... and has it back

    @property
    def final(self) -> bool:
        """The last event of a stream: nothing of it follows."""
        return self in FINAL_EVENTS


FINAL_EVENTS = frozenset({EventKind.ENDED, EventKind.STOPPED, EventKind.FAILED})
_KINDS = {kind.value: kind for kind in EventKind}


@dataclass(frozen=True)
class StreamEvent:
    """An event as it is made, before a sink writes it: its kind and what it says
    (``info``: JSON values, each written as one field of the entry)."""

    kind: EventKind
    info: dict[str, Any] = field(default_factory=dict)


def encode_event(kind: EventKind, stream_id: str, **info: Any) -> dict[str, str]:
    """Fields of one events-stream entry: kind, stream_id, time, v, then each info value
    as JSON (so numbers, lists and nested dicts come back typed)."""
    known = _KINDS.get(kind)
    if known is None:
        raise ValueError(f"unknown event kind {kind!r} (known: {', '.join(EventKind)})")
    reserved = {"kind", "stream_id", "time", "v"} & info.keys()
    if reserved:
        raise ValueError(f"event info may not use reserved names: {', '.join(sorted(reserved))}")
    fields = {"v": str(SCHEMA_VERSION), "kind": known.value, "stream_id": stream_id, "time": repr(time.time())}
    fields.update({key: json.dumps(value) for key, value in info.items()})
    return fields


def decode_event(fields: dict) -> dict[str, Any]:
    """Inverse of encode_event: {"kind", "stream_id", "time", **info}. The kind is an
    :class:`EventKind`; one this version does not know (a newer writer's, on a shared
    events stream) stays a plain string, which a reader skips rather than fails on."""
    f = {k: text(v) for k, v in text_keys(fields).items()}
    check_version(f.pop("v", None))
    kind = f.pop("kind")
    event: dict[str, Any] = {"kind": _KINDS.get(kind, kind), "stream_id": f.pop("stream_id"),
                             "time": float(f.pop("time"))}
    event.update({key: json.loads(value) for key, value in f.items()})
    return event
