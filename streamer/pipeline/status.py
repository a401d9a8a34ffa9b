"""Where a stream is, and how far it got: one set of names from the session to the API.

The session reports its state in ``progress()``, the manager keeps it per stream and
answers the API with it, ``/metrics`` counts streams by it and the benchmarks wait on
it. A ``StrEnum``, so that each state is also the plain string clients have always read
(``"running"``), in JSON, in Prometheus labels and in comparisons.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, ClassVar


class StreamState(StrEnum):
    CREATED = "created"          # the session exists, run() has not been called
    CONNECTING = "connecting"    # models, sinks and the source are being set up
    RUNNING = "running"          # frames flow
    STOPPING = "stopping"        # a stop was asked; in-flight frames are being published
    ENDED = "ended"              # the source ran out
    STOPPED = "stopped"          # stopped on request, sinks flushed
    FAILED = "failed"            # see the stream's error

    @property
    def active(self) -> bool:
        """Still holding a stream slot (not finished)."""
        return self in ACTIVE


class RunCause(StrEnum):
    """Why a session's run starts: it tells the run which event opens it. Whatever the
    cause, a run carries on after what its sinks hold (``session._resume_point``)."""

    SUBMITTED = "submitted"       # a new stream (or Ray re-sent the run of a crashed host: resumed)
    RESTARTED = "restarted"       # a finished stream started again on request: a `restarted` event
    SERVICE_RESTART = "service_restart"   # it was running when the service went down: `resumed`


# What a service's stream can be in, in the order /metrics lists them (the manager lists a
# stream from the moment it launches the session, so never as "created").
SERVICE_STATES = (StreamState.CONNECTING, StreamState.RUNNING, StreamState.STOPPING,
                  StreamState.ENDED, StreamState.STOPPED, StreamState.FAILED)
ACTIVE = frozenset(SERVICE_STATES[:3])


@dataclass
class StreamProgress:
    """A stream's counters so far: what ``StreamSession.progress()`` reports, what the
    manager keeps per stream, what ``/metrics`` renders and (with the stream's identity,
    :class:`StreamStatus`) what the API, the CLI and the benchmarks read.

    The names are the API's (README: ``GET /streams``): ``dropped_frames``, not
    ``dropped``; nothing renames a field on the way. Between processes (a Ray actor's
    answer) it travels as itself, pickled; :meth:`to_json` is for where JSON is written.
    """

    state: StreamState = StreamState.CREATED
    frames: int = 0
    faces: int = 0
    tracks: int = 0
    persons: int = 0                      # distinct person ids (streamer.persons.book)
    seconds: float = 0.0                  # processing, start-up excluded
    fps: float = 0.0                      # average since frames started to flow
    processed_fps: float = 0.0            # recent rate (0 unless running)
    source_fps: float | None = None
    live: bool = False
    lag_s: float | None = None            # live: capture to publish of the latest frame
    latency_s: dict | None = None         # histogram snapshot (streamer.pipeline.counters)
    latency_p50_s: float | None = None
    latency_p99_s: float | None = None
    # the recent p50 / p99 of each stage of that latency (counters.Stage: source, track,
    # model, publish), {stage: {"p50_s": ..., "p99_s": ...}}: which one says why it is late
    latency_stages: dict | None = None
    frame_count_estimate: int | None = None
    decode_errors: int = 0
    dropped_frames: int = 0
    reconnects: int = 0
    last_error: str | None = None
    node_id: str | None = None
    # records each sink wrote so far, by sink_label ("redis", "parquet"): /metrics
    published: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamProgress:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "state" in values:
            values["state"] = StreamState(values["state"])
        return cls(**values)

    def finished(self, summary: StreamSummary) -> StreamProgress:
        """These counters brought up to a finished run's summary (``processed_fps``
        becomes the run's average). The rates and latencies come from the summary too: a
        short stream may end before anyone asked for its progress, and the last answer
        asked for missed the frames after it."""
        return replace(self, state=summary.state, frames=summary.frames, faces=summary.faces,
                       tracks=summary.tracks, persons=summary.persons, dropped_frames=summary.dropped_frames,
                       reconnects=summary.reconnects, processed_fps=summary.fps,
                       source_fps=_known(summary.source_fps, self.source_fps), lag_s=_known(summary.lag_s, self.lag_s),
                       latency_s=_known(summary.latency_s, self.latency_s),
                       latency_p50_s=_known(summary.latency_p50_s, self.latency_p50_s),
                       latency_p99_s=_known(summary.latency_p99_s, self.latency_p99_s),
                       latency_stages=_known(summary.latency_stages, self.latency_stages),
                       published=_published(summary.sinks) or self.published)


def _known(value: Any, before: Any) -> Any:
    """``value``, or what was known ``before`` when a summary does not say (None)."""
    return before if value is None else value


def sink_label(sink_class: str) -> str:
    """A sink's short name where counts are labelled by sink: ``RedisSink`` → ``redis``."""
    return sink_class.removesuffix("Sink").lower()


def _published(sinks: dict[str, dict]) -> dict[str, int]:
    """Records each sink wrote, from a summary's ``sinks`` (class name → its
    ``SinkStats.to_json()``, in which Parquet's ``published`` is spelt ``rows_written``)."""
    return {sink_label(name): int(stats.get("published", stats.get("rows_written", 0)))
            for name, stats in sinks.items()}


@dataclass
class StreamSummary:
    """How a session's run ended: what ``run()`` returns (through Ray as itself), the
    fields of the final Redis event (``ended`` / ``stopped`` / ``failed``, less the stream
    id, which the event carries itself) and the body of ``analyze``'s summary.json.

    Its JSON is those events' and that file's contract, which has always spelt the
    dropped frames ``dropped``: :meth:`to_json` writes that name, and only there.
    """

    stream_id: str
    state: StreamState
    frames: int = 0
    faces: int = 0
    tracks: int = 0
    persons: int = 0                      # distinct person ids among the tracks (0: identity off)
    published: int = 0                    # records every sink wrote (sinks.base.published_everywhere)
    dropped_frames: int = 0
    reconnects: int = 0
    decode_errors: int = 0
    seconds: float = 0.0
    startup_seconds: float = 0.0
    fps: float = 0.0
    resumed_after_frame: int | None = None
    # as in StreamProgress, over the whole run (None: not known, e.g. no frame came)
    source_fps: float | None = None
    lag_s: float | None = None
    latency_p50_s: float | None = None
    latency_p99_s: float | None = None
    latency_s: dict | None = None         # histogram snapshot (streamer.pipeline.counters), every frame
    latency_stages: dict | None = None    # as in StreamProgress, over the last frames
    sinks: dict[str, dict] = field(default_factory=dict)   # per sink type, its SinkStats.to_json()

    # this field's name in the events and summary.json
    _JSON_NAMES: ClassVar[dict[str, str]] = {"dropped_frames": "dropped"}

    def to_json(self) -> dict[str, Any]:
        return {self._JSON_NAMES.get(f.name, f.name): getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamSummary:
        names = {cls._JSON_NAMES.get(f.name, f.name): f.name for f in fields(cls)}
        values = {names[k]: v for k, v in data.items() if k in names}
        values["state"] = StreamState(values["state"])
        return cls(**values)

    def event_fields(self) -> dict[str, Any]:
        """The final event's fields: the summary without the stream id."""
        out = self.to_json()
        del out["stream_id"]
        return out


@dataclass
class StreamStatus:
    """One stream as the service reports it (``GET /streams/{id}``, the CLI's ``streams``,
    ``stop`` and ``submit``): its identity, its :class:`StreamProgress` and where its
    records go. :meth:`to_json` is the API's response body, field for field."""

    id: str
    name: str | None
    url: str                              # credentials redacted
    state: StreamState
    created_at: str
    ended_at: str | None
    progress: StreamProgress
    last_error: str | None
    redis_stream: str
    parquet: str

    _PROGRESS: ClassVar[tuple[str, ...]] = ("source_fps", "processed_fps", "lag_s", "latency_p50_s", "latency_p99_s",
                 "latency_stages", "frames", "faces", "tracks", "dropped_frames", "reconnects")

    def to_json(self) -> dict[str, Any]:
        p = self.progress
        return {"id": self.id, "name": self.name, "url": self.url, "state": self.state,
                "created_at": self.created_at, "ended_at": self.ended_at,
                **{k: getattr(p, k) for k in self._PROGRESS},
                "last_error": self.last_error, "redis_stream": self.redis_stream, "parquet": self.parquet}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamStatus:
        state = StreamState(data["state"])
        progress = StreamProgress.from_json({k: data[k] for k in cls._PROGRESS if k in data} | {"state": state})
        return cls(id=data["id"], name=data.get("name"), url=data["url"], state=state,
                   created_at=data["created_at"], ended_at=data.get("ended_at"), progress=progress,
                   last_error=data.get("last_error"), redis_stream=data["redis_stream"], parquet=data["parquet"])
