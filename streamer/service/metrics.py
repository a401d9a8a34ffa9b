"""``GET /metrics``: the manager's numbers in the Prometheus text format (0.0.4), written
by ``prometheus_client``.

Every number already lives in a session or a replica (other processes), and the API may
run as several Serve replicas, so nothing is registered in a process-wide registry: each
scrape builds its own :class:`CollectorRegistry` holding one :class:`SnapshotCollector`
over the manager's snapshot, and ``prometheus_client`` writes names, ``HELP``/``TYPE``
lines, label escaping and histogram series. Labels: ``stream`` (the stream id) on
per-stream families, ``replica`` (its index) on per-replica ones, ``state`` and ``sink``
where a family is split by them. docs/observability.md lists every family;
deploy/grafana-dashboard.json shows each of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Iterable, Iterator

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from streamer.pipeline.status import SERVICE_STATES

# The exposition format every Prometheus reads; prometheus_client's "latest" (1.0.0)
# would ask scrapers for a newer parser for nothing this service uses.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class Family:
    """One metric family: its Prometheus name, type and help, and the snapshot field it
    is read from (a stream's ``StreamProgress.to_json()`` or a replica's ``stats()``)."""

    name: str
    kind: Kind
    key: str
    help: str
    default: float | None = None     # the value when the snapshot has none (None: no sample)


STREAM_FAMILIES = (
    Family("facestream_stream_frames_total", Kind.COUNTER, "frames", "Frames processed."),
    Family("facestream_stream_faces_total", Kind.COUNTER, "faces", "Face records made."),
    Family("facestream_stream_tracks_total", Kind.COUNTER, "tracks", "Distinct face tracks seen."),
    Family("facestream_stream_persons_total", Kind.COUNTER, "persons", "Distinct person ids seen (0: identity off)."),
    Family("facestream_stream_dropped_frames_total", Kind.COUNTER, "dropped_frames",
           "Live frames dropped to keep up."),
    Family("facestream_stream_decode_errors_total", Kind.COUNTER, "decode_errors",
           "Frames the decoder could not read."),
    Family("facestream_stream_reconnects_total", Kind.COUNTER, "reconnects", "Attempts to reconnect to the source."),
    Family("facestream_stream_processed_fps", Kind.GAUGE, "processed_fps", "Frames processed per second, recent."),
    Family("facestream_stream_source_fps", Kind.GAUGE, "source_fps", "Frame rate of the source."),
    Family("facestream_stream_lag_seconds", Kind.GAUGE, "lag_s", "Capture to publish delay of the latest frame."),
    Family("facestream_stream_latency_seconds", Kind.HISTOGRAM, "latency_s",
           "Capture to publish delay per frame (frame to Redis)."),
)

# A replica counts from its first call on (an empty ``stats()`` before): its counters
# and queue start at 0.
REGRESSOR_FAMILIES = (
    Family("facestream_regressor_crops_total", Kind.COUNTER, "crops", "Crops regressed by a replica.", default=0),
    Family("facestream_regressor_batches_total", Kind.COUNTER, "batches", "Batches run by a replica.", default=0),
    Family("facestream_regressor_queue_crops", Kind.GAUGE, "queued_crops", "Crops waiting at a replica now.",
           default=0),
    Family("facestream_regressor_max_batch_crops", Kind.GAUGE, "max_batch_size",
           "Most crops a replica runs in one batch (model.max_batch_size)."),
    Family("facestream_regressor_batch_size", Kind.HISTOGRAM, "batch_size", "Crops per batch."),
    Family("facestream_regressor_latency_seconds", Kind.HISTOGRAM, "latency_s", "Request arrival to result."),
)

DETECTOR_FAMILIES = (
    Family("facestream_detector_frames_total", Kind.COUNTER, "frames", "Frames searched for faces by a replica.",
           default=0),
    Family("facestream_detector_batches_total", Kind.COUNTER, "batches", "Batches run by a replica.", default=0),
    Family("facestream_detector_queue_frames", Kind.GAUGE, "queued", "Frames waiting at a replica now.", default=0),
    Family("facestream_detector_max_batch_frames", Kind.GAUGE, "max_batch_size",
           "Most frames a replica runs in one batch (detector.batch_size)."),
    Family("facestream_detector_batch_size", Kind.HISTOGRAM, "batch_size", "Frames per batch."),
    Family("facestream_detector_latency_seconds", Kind.HISTOGRAM, "latency_s", "Request arrival to result."),
)


def render(snapshot: dict) -> str:
    """Prometheus text for the dict returned by ``StreamManager.metrics()``: ``streams``
    (id → ``StreamProgress.to_json()``, the state the manager's), ``regressors`` and
    ``detectors`` (each replica's ``stats()``; an empty dict for one that did not answer)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry).decode()


class SnapshotCollector(Collector):
    """The families of one manager snapshot; a stream or replica without a value for a
    family (not measured yet, e.g. ``lag_s`` of a file) has no sample in it."""

    def __init__(self, snapshot: dict):
        self.streams: dict[str, dict] = snapshot.get("streams", {})
        self.regressors: list[dict] = list(snapshot.get("regressors", []))
        self.detectors: list[dict] = list(snapshot.get("detectors", []))

    def collect(self) -> Iterator[Metric]:
        yield self._state_counts()
        yield self._states()
        for family in STREAM_FAMILIES:
            yield _family(family, "stream", self.streams)
        yield self._published()
        yield self._stages()
        yield from (_family(f, "replica", _indexed(self.regressors)) for f in REGRESSOR_FAMILIES)
        yield from (_family(f, "replica", _indexed(self.detectors)) for f in DETECTOR_FAMILIES)

    def _state_counts(self) -> Metric:
        g = GaugeMetricFamily("facestream_streams", "Streams known to the service, by state.", labels=["state"])
        for state in SERVICE_STATES:
            g.add_metric([state], sum(s.get("state") == state for s in self.streams.values()))
        return g

    def _states(self) -> Metric:
        """One 0/1 sample per stream and state (Prometheus' way to say which of a set):
        ``facestream_stream_state{state="failed"} == 1`` names the failed streams."""
        g = GaugeMetricFamily("facestream_stream_state", "1 for the state a stream is in, 0 for the others.",
                              labels=["stream", "state"])
        for sid, s in self.streams.items():
            for state in SERVICE_STATES:
                g.add_metric([sid, state], 1 if s.get("state") == state else 0)
        return g

    def _published(self) -> Metric:
        c = CounterMetricFamily("facestream_stream_published_records_total",
                                "Records a sink (redis, parquet) wrote for a stream.", labels=["stream", "sink"])
        for sid, s in self.streams.items():
            for sink, n in sorted((s.get("published") or {}).items()):
                c.add_metric([sid, sink], n)
        return c

    def _stages(self) -> Metric:
        """Each stage's recent p50 and p99 of a stream's latency (StreamProgress.latency_stages):
        which part of capture-to-publish grew when a stream is late."""
        g = GaugeMetricFamily("facestream_stream_stage_latency_seconds",
                              "Recent p50 / p99 of each stage of a frame's capture-to-publish delay "
                              "(source, track, model, publish).", labels=["stream", "stage", "quantile"])
        for sid, s in self.streams.items():
            for stage, q in (s.get("latency_stages") or {}).items():
                for quantile, key in (("0.5", "p50_s"), ("0.99", "p99_s")):
                    if q.get(key) is not None:
                        g.add_metric([sid, stage, quantile], float(q[key]))
        return g


def _indexed(stats: Iterable[dict]) -> dict[str, dict]:
    return {str(i): s for i, s in enumerate(stats)}


def _family(family: Family, label: str, sources: dict[str, dict]) -> Metric:
    metric: Any
    if family.kind == Kind.HISTOGRAM:
        metric = HistogramMetricFamily(family.name, family.help, labels=[label])
        for key, source in sources.items():
            snap = source.get(family.key)
            if snap and snap.get("buckets"):
                metric.add_metric([key], _buckets(snap), snap["sum"])
        return metric
    cls = CounterMetricFamily if family.kind == Kind.COUNTER else GaugeMetricFamily
    metric = cls(family.name, family.help, labels=[label])
    for key, source in sources.items():
        value = source.get(family.key, family.default)
        if value is not None:
            metric.add_metric([key], float(value))
    return metric


def _buckets(snap: dict) -> list[tuple[str, float]]:
    """A ``streamer.pipeline.counters.Histogram`` snapshot as prometheus_client's buckets
    (cumulative, the last one ``+Inf``); ``le`` written as before (``0.5``, ``2``)."""
    return [("+Inf" if le is None else f"{le:g}", float(count)) for le, count in snap["buckets"]]
