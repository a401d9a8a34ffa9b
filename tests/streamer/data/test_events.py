"""Stream events: their kinds are the wire's strings, their entries round-trip typed."""
from __future__ import annotations

import json

import pytest

from streamer.data.events import FINAL_EVENTS, EventKind, StreamEvent, decode_event, encode_event


def test_event_kinds_are_the_strings_consumers_read():
    assert [k.value for k in EventKind] == ["started", "resumed", "restarted", "progress", "cut", "person", "ended",
                                            "stopped", "failed", "reconnecting", "reconnected"]
    assert EventKind.CUT == "cut" and json.dumps({"kind": EventKind.CUT}) == '{"kind": "cut"}'
    assert FINAL_EVENTS == {"ended", "stopped", "failed"}
    assert [k for k in EventKind if k.final] == [EventKind.ENDED, EventKind.STOPPED, EventKind.FAILED]


def test_events_round_trip():
    fields = encode_event(EventKind.PROGRESS, "cam1", frames=120, fps=29.5, source={"url": "x.mp4"})
    assert all(isinstance(k, str) and type(v) is str for k, v in fields.items())
    assert (fields["kind"], fields["v"]) == ("progress", "4")
    event = decode_event({k.encode(): v.encode() for k, v in fields.items()})
    assert event["kind"] is EventKind.PROGRESS and event["stream_id"] == "cam1"
    assert event["frames"] == 120 and event["fps"] == 29.5 and event["source"] == {"url": "x.mp4"}
    assert isinstance(event["time"], float)


def test_unknown_kinds_and_reserved_names_are_refused_when_written():
    with pytest.raises(ValueError, match="unknown event kind 'exploded'"):
        encode_event("exploded", "cam1")
    with pytest.raises(ValueError, match="reserved names: time"):
        encode_event(EventKind.ENDED, "cam1", time=1.0)
    assert encode_event("ended", "cam1")["kind"] == "ended"   # a kind by its value is the same kind


def test_a_kind_this_version_does_not_know_reads_as_its_string():
    fields = {**encode_event(EventKind.STARTED, "cam1"), "kind": "rewound"}
    event = decode_event(fields)
    assert event["kind"] == "rewound" and not isinstance(event["kind"], EventKind)
    assert event["kind"] not in FINAL_EVENTS


def test_newer_events_are_refused():
    with pytest.raises(ValueError, match="upgrade"):
        decode_event({**encode_event(EventKind.ENDED, "cam1"), "v": "5"})


def test_a_stream_event_carries_its_kind_and_info():
    event = StreamEvent(EventKind.PERSON, {"track_id": 3, "person_id": 1})
    assert (event.kind, event.info["person_id"]) == ("person", 1)
    assert StreamEvent(EventKind.CUT).info == {}
