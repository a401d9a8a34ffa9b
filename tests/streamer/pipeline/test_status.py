"""streamer.pipeline.status: the one progress/summary/status type, its JSON the contracts' names."""
from __future__ import annotations

import json

from streamer.pipeline.status import StreamProgress, StreamState, StreamStatus, StreamSummary

API_FIELDS = ["id", "name", "url", "state", "created_at", "ended_at", "source_fps", "processed_fps", "lag_s",
              "latency_p50_s", "latency_p99_s", "latency_stages", "frames", "faces", "tracks", "dropped_frames",
              "reconnects", "last_error", "redis_stream", "parquet"]


def _through_json(value: dict) -> dict:
    return json.loads(json.dumps(value))


def test_progress_round_trips_with_the_api_names():
    p = StreamProgress(state=StreamState.RUNNING, frames=120, faces=118, dropped_frames=3, lag_s=0.2,
                       latency_s={"buckets": [[0.1, 2], [None, 3]], "sum": 0.4, "count": 3})
    back = StreamProgress.from_json(_through_json(p.to_json()))
    assert back == p and back.state is StreamState.RUNNING
    assert "dropped_frames" in p.to_json() and "dropped" not in p.to_json()


def test_status_body_has_the_api_fields_in_order():
    p = StreamProgress(state=StreamState.RUNNING, frames=5, dropped_frames=1, processed_fps=24.5)
    s = StreamStatus(id="cam", name=None, url="rtsp://***@cam/x", state=StreamState.STOPPING, created_at="t0",
                     ended_at=None, progress=p, last_error=None, redis_stream="facestream:stream:cam",
                     parquet="/out/records")
    body = _through_json(s.to_json())
    assert list(body) == API_FIELDS
    assert body["state"] == "stopping" and body["dropped_frames"] == 1 and body["processed_fps"] == 24.5
    assert StreamStatus.from_json(body).to_json() == body


def test_summary_keeps_the_event_spelling_and_finishes_progress():
    s = StreamSummary(stream_id="cam", state=StreamState.ENDED, frames=40, faces=40, tracks=1, published=40,
                      dropped_frames=2, fps=12.5, sinks={"RedisSink": {"published": 40}})
    body = _through_json(s.to_json())
    assert body["dropped"] == 2 and "dropped_frames" not in body and body["state"] == "ended"
    assert StreamSummary.from_json(body) == s
    assert "stream_id" not in s.event_fields() and s.event_fields()["dropped"] == 2
    done = StreamProgress(state=StreamState.RUNNING, lag_s=0.3).finished(s)
    assert (done.state, done.frames, done.dropped_frames, done.processed_fps, done.lag_s) == \
        (StreamState.ENDED, 40, 2, 12.5, 0.3)


def test_progress_and_summary_travel_between_processes_as_themselves():
    """Ray pickles what a session answers: the objects arrive whole, their JSON unchanged."""
    import pickle

    p = StreamProgress(state=StreamState.RUNNING, frames=7, lag_s=0.1, node_id="n1")
    s = StreamSummary(stream_id="cam", state=StreamState.STOPPED, frames=7, dropped_frames=1)
    p2, s2 = pickle.loads(pickle.dumps(p)), pickle.loads(pickle.dumps(s))
    assert (p2, s2) == (p, s) and p2.state is StreamState.RUNNING and s2.state is StreamState.STOPPED
    assert json.dumps(s2.to_json()) == json.dumps(s.to_json()) and s2.to_json()["dropped"] == 1
