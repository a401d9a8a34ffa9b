"""/metrics: rendered by prometheus_client from the manager's snapshot, read back with
prometheus_client's own parser; and deploy/'s Grafana dashboard and alert rules held to a
real scrape of the running service."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from streamer.pipeline.counters import BATCH_BUCKETS, LATENCY_BUCKETS_S, Histogram
from streamer.service.metrics import render

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
# what Grafana puts in a query before Prometheus sees it
_GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$stream": ".*"}


def _samples(text: str) -> tuple[dict[tuple, float], dict[str, str]]:
    """({(sample name, sorted labels): value}, {family: type}) as Prometheus reads the text."""
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, types


def _get(samples: dict, name: str, **labels) -> float:
    return samples[(name, tuple(sorted((k, str(v)) for k, v in labels.items())))]


def test_render_streams_and_replicas():
    batches, latency = Histogram(BATCH_BUCKETS), Histogram(LATENCY_BUCKETS_S)
    for size in (1, 3, 3, 8):
        batches.observe(size)
    for seconds in (0.02, 0.2, 30.0):
        latency.observe(seconds)
    snap = {
        "streams": {
            "cam-1": {"state": "running", "frames": 120, "faces": 240, "tracks": 3, "persons": 2, "dropped_frames": 3,
                      "decode_errors": 1, "reconnects": 1, "processed_fps": 24.5, "source_fps": 25.0, "lag_s": 0.2,
                      "latency_s": latency.snapshot(), "published": {"redis": 240, "parquet": 200},
                      "latency_stages": {"source": {"p50_s": 0.002, "p99_s": 0.5}, "model": {"p50_s": 0.03,
                                                                                          "p99_s": 0.09}}},
            'we"ird': {"state": "ended", "frames": 10, "faces": 0},
            "new": {"state": "connecting"},                     # no progress yet: its state only
        },
        "regressors": [{"crops": 15, "batches": 4, "queued_crops": 2, "max_batch_size": 32,
                        "batch_size": batches.snapshot()}, {}],  # the second did not answer
        "detectors": [{"frames": 130, "batches": 40, "queued": 1, "max_batch_size": 8}],
    }
    text = render(snap)
    m, types = _samples(text)
    assert _get(m, "facestream_streams", state="running") == 1
    assert _get(m, "facestream_streams", state="ended") == 1
    assert _get(m, "facestream_streams", state="failed") == 0
    assert _get(m, "facestream_stream_state", stream="cam-1", state="running") == 1
    assert _get(m, "facestream_stream_state", stream="cam-1", state="failed") == 0
    assert _get(m, "facestream_stream_state", stream="new", state="connecting") == 1
    assert _get(m, "facestream_stream_frames_total", stream="cam-1") == 120
    assert _get(m, "facestream_stream_dropped_frames_total", stream="cam-1") == 3
    assert _get(m, "facestream_stream_decode_errors_total", stream="cam-1") == 1
    assert _get(m, "facestream_stream_persons_total", stream="cam-1") == 2
    assert _get(m, "facestream_stream_frames_total", stream='we"ird') == 10   # label escaped and read back
    assert ("facestream_stream_lag_seconds", (("stream", 'we"ird'),)) not in m   # unknown: no sample
    assert not any(dict(labels).get("stream") == "new" and name != "facestream_stream_state" for name, labels in m)
    assert _get(m, "facestream_stream_published_records_total", stream="cam-1", sink="redis") == 240
    assert _get(m, "facestream_stream_published_records_total", stream="cam-1", sink="parquet") == 200
    # the stream latency histogram, bucket by bucket (le written as before: "0.025", "+Inf")
    assert _get(m, "facestream_stream_latency_seconds_bucket", stream="cam-1", le="0.025") == 1
    assert _get(m, "facestream_stream_latency_seconds_bucket", stream="cam-1", le="10") == 2
    assert _get(m, "facestream_stream_latency_seconds_bucket", stream="cam-1", le="+Inf") == 3
    assert _get(m, "facestream_stream_latency_seconds_count", stream="cam-1") == 3
    assert abs(_get(m, "facestream_stream_latency_seconds_sum", stream="cam-1") - 30.22) < 1e-9
    # where that latency goes: each stage's recent p50 and p99
    assert _get(m, "facestream_stream_stage_latency_seconds", stream="cam-1", stage="source", quantile="0.99") == 0.5
    assert _get(m, "facestream_stream_stage_latency_seconds", stream="cam-1", stage="model", quantile="0.5") == 0.03
    assert not any(name == "facestream_stream_stage_latency_seconds" and dict(labels)["stream"] != "cam-1"
                   for name, labels in m)
    assert _get(m, "facestream_regressor_batch_size_bucket", replica=0, le="1") == 1
    assert _get(m, "facestream_regressor_batch_size_bucket", replica=0, le="4") == 3
    assert _get(m, "facestream_regressor_batch_size_bucket", replica=0, le="+Inf") == 4
    assert _get(m, "facestream_regressor_batch_size_sum", replica=0) == 15
    assert _get(m, "facestream_regressor_queue_crops", replica=0) == 2
    assert _get(m, "facestream_regressor_max_batch_crops", replica=0) == 32
    assert _get(m, "facestream_regressor_crops_total", replica=1) == 0      # no answer yet: counts from 0
    assert ("facestream_regressor_max_batch_crops", (("replica", "1"),)) not in m
    assert _get(m, "facestream_detector_frames_total", replica=0) == 130
    assert _get(m, "facestream_detector_queue_frames", replica=0) == 1
    assert _get(m, "facestream_detector_max_batch_frames", replica=0) == 8
    assert types["facestream_stream_frames"] == "counter" and types["facestream_stream_lag_seconds"] == "gauge"
    assert types["facestream_stream_latency_seconds"] == "histogram"
    # every family says what it is
    for family in types:
        shown = family + "_total" if types[family] == "counter" else family
        assert f"# HELP {shown} " in text and f"# TYPE {shown} {types[family]}" in text, family


def _scrape(service, token: str | None) -> tuple[int, str, dict]:
    req = urllib.request.Request(service.base + "/metrics")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def _queries() -> dict[str, list[str]]:
    """Every PromQL expression of the dashboard and of the alert rules, by where it is."""
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yaml").read_text())
    out: dict[str, list[str]] = {"dashboard": [], "alerts": []}
    for panel in dashboard["panels"]:
        out["dashboard"] += [t["expr"] for t in panel.get("targets", [])]
    out["dashboard"] += [v["definition"].replace("label_values(", "group by (stream) (").replace(", stream)", ")")
                         for v in dashboard["templating"]["list"] if v["type"] == "query"]
    for group in rules["groups"]:
        out["alerts"] += [r["expr"] for r in group["rules"]]
    return out


def _metric_names(expr: str) -> set[str]:
    """The metric names an expression selects, from the parsed expression (a syntax error raises)."""
    for var, value in _GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    names: set[str] = set()

    def visit(node) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def test_the_dashboard_shows_every_metric_and_uses_and_alerts_on_only_real_ones(service, face_video, token):
    from streamer.testbed import RtspServer

    assert _scrape(service, None)[0] == 401
    with RtspServer(face_video.path) as server:
        code, created = service.request("POST", "/streams", {"url": server.url, "name": "metrics-cam"})
        assert code == 201, created
        service.wait("metrics-cam", lambda s: s["frames"] >= 15, timeout_s=90, what="15 frames")
        code, text, headers = _scrape(service, token)
        code_stop, stopped = service.request("DELETE", "/streams/metrics-cam")
    assert code == 200 and headers["content-type"].startswith("text/plain; version=0.0.4"), headers
    assert code_stop == 200 and stopped["state"] == "stopped", stopped
    samples, types = _samples(text)
    running = {name for name, _ in samples}
    assert _get(samples, "facestream_stream_state", stream="metrics-cam", state="running") == 1
    assert _get(samples, "facestream_stream_frames_total", stream="metrics-cam") >= 15
    assert _get(samples, "facestream_stream_published_records_total", stream="metrics-cam", sink="redis") > 0
    assert _get(samples, "facestream_regressor_max_batch_crops", replica=0) == 32

    # after the stop: the final counts, every sink's published records equal to the faces
    _, after, _ = _scrape(service, token)
    final, _ = _samples(after)
    assert _get(final, "facestream_stream_state", stream="metrics-cam", state="stopped") == 1
    for sink in ("redis", "parquet"):
        assert _get(final, "facestream_stream_published_records_total", stream="metrics-cam",
                    sink=sink) == stopped["faces"] > 0

    queries = _queries()
    used = {where: set().union(*map(_metric_names, exprs)) for where, exprs in queries.items()}
    for where, names in used.items():
        assert names and all(n.startswith("facestream_") for n in names), (where, names)
        missing = names - running
        assert not missing, f"{where} queries metrics /metrics does not have: {sorted(missing)}"
    # and the other way: every family of /metrics is on the dashboard (a histogram through its series)
    series = {family: {n for n in running if n == family or n.startswith(family + "_")} for family in types}
    absent = sorted(f for f, names in series.items() if not names & used["dashboard"])
    assert not absent, f"on /metrics, not on the dashboard: {absent}"
    assert len(types) >= 25, sorted(types)
    alerts = {r["alert"] for g in yaml.safe_load((DEPLOY / "prometheus-alerts.yaml").read_text())["groups"]
              for r in g["rules"]}
    assert {"FacestreamStreamFailed", "FacestreamDroppingFrames", "FacestreamLagRising"} <= alerts
    assert any(re.search("QueueFull", a) for a in alerts)


def test_the_alert_rules_fire_as_their_unit_tests_say():
    """deploy/prometheus-alerts.test.yaml through Prometheus' own rule engine: each alert
    fires on the series it is for, after its ``for``, and not on the healthy ones."""
    promtool = shutil.which("promtool") or shutil.which("promtool", path=str(Path(sys.executable).parent))
    if promtool is None:
        pytest.skip("no promtool (it comes with Prometheus: Debian's `prometheus` package)")
    for args in (["check", "rules", "prometheus-alerts.yaml"], ["test", "rules", "prometheus-alerts.test.yaml"]):
        done = subprocess.run([promtool, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS" in done.stdout, done.stdout
