"""``GET /metrics``: the manager's numbers as Prometheus text (exposition format 0.0.4).

Written by hand rather than with a client library's registry: every number already
lives in a session or a replica (other processes), so there is nothing to register,
only a snapshot to print.
"""
from __future__ import annotations

from typing import Iterable

from streamer.pipeline.status import SERVICE_STATES


def _labels(**labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Writer:
    def __init__(self):
        self.lines: list[str] = []
        self._declared: set[str] = set()

    def declare(self, name: str, kind: str, help_text: str) -> None:
        if name not in self._declared:
            self._declared.add(name)
            self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, value, **labels) -> None:
        if value is None:
            return
        self.lines.append(f"{name}{_labels(**labels)} {float(value):.6g}")

    def histogram(self, name: str, snap: dict | None, **labels) -> None:
        if not snap:
            return
        for le, count in snap["buckets"]:
            self.sample(f"{name}_bucket", count, **labels, le="+Inf" if le is None else f"{le:g}")
        self.sample(f"{name}_sum", snap["sum"], **labels)
        self.sample(f"{name}_count", snap["count"], **labels)


def render(snapshot: dict) -> str:
    """Prometheus text for the dict returned by ``StreamManager.metrics()`` (each stream a
    ``StreamProgress.to_json()``)."""
    w = _Writer()
    streams: dict = snapshot.get("streams", {})
    w.declare("facestream_streams", "gauge", "Streams known to the service, by state.")
    for state in SERVICE_STATES:
        w.sample("facestream_streams", sum(s.get("state") == state for s in streams.values()), state=state)
    per_stream = (
        ("facestream_stream_frames_total", "counter", "frames", "Frames processed."),
        ("facestream_stream_faces_total", "counter", "faces", "Face records published."),
        ("facestream_stream_dropped_frames_total", "counter", "dropped_frames", "Live frames dropped to keep up."),
        ("facestream_stream_reconnects_total", "counter", "reconnects", "Reconnects to the source."),
        ("facestream_stream_processed_fps", "gauge", "processed_fps", "Frames processed per second, recent."),
        ("facestream_stream_source_fps", "gauge", "source_fps", "Frame rate of the source."),
        ("facestream_stream_lag_seconds", "gauge", "lag_s", "Capture to publish delay of the latest frame."),
    )
    for name, kind, key, text in per_stream:
        w.declare(name, kind, text)
        for sid, s in streams.items():
            w.sample(name, s.get(key), stream=sid)
    w.declare("facestream_stream_latency_seconds", "histogram", "Capture to publish delay per live frame.")
    for sid, s in streams.items():
        w.histogram("facestream_stream_latency_seconds", s.get("latency_s"), stream=sid)

    _replicas(w, "regressor", snapshot.get("regressors", []))
    _replicas(w, "detector", snapshot.get("detectors", []))
    return "\n".join(w.lines) + "\n"


def _replicas(w: _Writer, kind: str, stats: Iterable[dict]) -> None:
    stats = list(stats)
    if kind == "regressor":
        w.declare("facestream_regressor_crops_total", "counter", "Crops regressed by a replica.")
        w.declare("facestream_regressor_batches_total", "counter", "Batches run by a replica.")
        w.declare("facestream_regressor_queue_crops", "gauge", "Crops waiting at a replica now.")
        w.declare("facestream_regressor_batch_size", "histogram", "Crops per batch.")
        w.declare("facestream_regressor_latency_seconds", "histogram", "Request arrival to result.")
        for i, s in enumerate(stats):
            w.sample("facestream_regressor_crops_total", s.get("crops", 0), replica=i)
            w.sample("facestream_regressor_batches_total", s.get("batches", 0), replica=i)
            w.sample("facestream_regressor_queue_crops", s.get("queued_crops", 0), replica=i)
            w.histogram("facestream_regressor_batch_size", s.get("batch_size"), replica=i)
            w.histogram("facestream_regressor_latency_seconds", s.get("latency_s"), replica=i)
    else:
        w.declare("facestream_detector_frames_total", "counter", "Frames searched for faces by a replica.")
        w.declare("facestream_detector_latency_seconds", "histogram", "Request arrival to result.")
        for i, s in enumerate(stats):
            w.sample("facestream_detector_frames_total", s.get("frames", 0), replica=i)
            w.histogram("facestream_detector_latency_seconds", s.get("latency_s"), replica=i)
