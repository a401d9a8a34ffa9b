"""streamer.pipeline.analyze in-process, borrowing the test session's Ray cluster: outputs,
summary.json, progress, reruns, input checks before anything starts, failed runs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import redis

from streamer.data.dataset import read_dataset, read_records
from streamer.data.events import decode_event
from streamer.data.redis_codec import decode_redis, events_key, stream_key
from streamer.data.sinks import ParquetSink
from streamer.pipeline.analyze import analyze
from streamer.pipeline.status import StreamProgress
from streamer.sources.frames import NotAVideo, SourceNotFound
from workers import face_model
from workers.checkpoint import CheckpointError
from workers.emotion_labels import EMOTION_ABSTAIN, EMOTION_CLASSES


def test_analyze_writes_records_summary_and_reports_progress(face_video, ray_runtime, redis_url,
                                                            pipeline_config, assert_records_equal):
    pipeline_config.redis.url = redis_url
    seen: list[StreamProgress] = []
    summary = analyze(face_video.path, pipeline_config, stream_id="obama", on_progress=seen.append)

    out = Path(pipeline_config.parquet.out)
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["status"] == "ok" and summary["stream_id"] == "obama"
    assert (summary["frames"], summary["faces"], summary["tracks"], summary["published"]) == (40, 40, 1, 40)
    assert summary["model_version"].startswith("test-tiny@") and summary["redis"] == redis_url
    fm = face_model.load()
    assert summary["face_model"] == {"version": fm.version, "sha256": fm.sha256}

    records = read_records(out, "obama")
    client = redis.Redis.from_url(redis_url)
    in_redis = [decode_redis(f) for _, f in client.xrange(stream_key("facestream", "obama"))]
    client.close()
    assert_records_equal(in_redis, records)
    assert [r.frame_index for r in records] == list(range(40))
    meta = read_dataset(out).schema.metadata
    assert meta[b"facestream.face_model_sha256"] == fm.sha256.encode()
    assert meta[b"facestream.model_version"] == summary["model_version"].encode()
    assert meta[b"facestream.reading"] == b"mirror_average"   # a file, and the checkpoint asks for it
    # emotion from the classifier beside the test checkpoint, smoothed and labelled per track
    assert meta[b"facestream.emotion_classes"] == ",".join(EMOTION_CLASSES).encode()
    raw = np.stack([r.emotion_probs_raw for r in records])
    smooth = np.stack([r.emotion_probs for r in records])
    np.testing.assert_allclose(raw.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(smooth.sum(1), 1.0, rtol=1e-5)
    assert {r.emotion for r in records} <= set(EMOTION_CLASSES + EMOTION_ABSTAIN)
    assert np.abs(np.diff(smooth, axis=0)).sum() <= np.abs(np.diff(raw, axis=0)).sum()

    assert all(isinstance(p, StreamProgress) for p in seen)   # the session's own, not its JSON
    frames = [p.frames for p in seen]
    assert frames == sorted(frames) and frames[-1] == 40 and seen[-1].faces == 40


def test_rerun_replaces_the_streams_records_with_embedded_redis(face_video, ray_runtime, pipeline_config,
                                                                make_records):
    stale = ParquetSink(pipeline_config.parquet, "again")
    stale.write(make_records(7, faces=1, stream_id="again"))
    stale.close()
    pipeline_config.source.every = 4
    summary = analyze(face_video.path, pipeline_config, stream_id="again")
    assert summary["redis"].startswith("embedded") and summary["faces"] == 10
    records = read_records(pipeline_config.parquet.out, "again")
    assert [r.frame_index for r in records] == list(range(0, 40, 4))
    assert {r.model_version for r in records} == {summary["model_version"]}


@pytest.mark.parametrize("make_input, error", [
    (lambda d: d / "missing.mp4", SourceNotFound),
    (lambda d: (d / "text.mp4").write_text("not a video") and d / "text.mp4", NotAVideo),
])
def test_bad_input_fails_before_anything_starts(tmp_path, pipeline_config, make_input, error):
    with pytest.raises(error):
        analyze(make_input(tmp_path), pipeline_config)
    assert not (tmp_path / "out").exists()


def test_checkpoint_for_another_face_model_is_refused(tmp_path, face_video, pipeline_config, tiny_checkpoint):
    meta = json.loads(tiny_checkpoint.with_suffix(".json").read_text())
    meta["face_model"]["sha256"] = "0" * 64
    other = tmp_path / "other.json"
    other.write_text(json.dumps(meta))
    shutil.copy(tiny_checkpoint, tmp_path / "other.safetensors")
    pipeline_config.model.checkpoint = str(tmp_path / "other")
    with pytest.raises(CheckpointError, match="face model"):
        analyze(face_video.path, pipeline_config)


def test_corrupt_weights_are_refused(tmp_path, face_video, pipeline_config, tiny_checkpoint):
    shutil.copy(tiny_checkpoint.with_suffix(".json"), tmp_path / "corrupt.json")
    (tmp_path / "corrupt.safetensors").write_bytes(b"\0" * 64)
    pipeline_config.model.checkpoint = str(tmp_path / "corrupt")
    with pytest.raises(CheckpointError, match="unusable checkpoint"):
        analyze(face_video.path, pipeline_config)


def test_a_failed_run_says_failed(face_video, ray_runtime, redis_url, pipeline_config):
    """The Parquet sink cannot create its directory inside the session: the error reaches
    the caller, summary.json says failed with the reason, Redis got a failed event."""
    out = Path(pipeline_config.parquet.out)
    out.mkdir(parents=True)
    (out / "records").write_text("in the way")
    pipeline_config.redis.url = redis_url
    with pytest.raises(OSError):
        analyze(face_video.path, pipeline_config, stream_id="doomed")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "records" in summary["error"]
    assert "frames" not in summary
    client = redis.Redis.from_url(redis_url)
    events = [decode_event(f) for _, f in client.xrange(events_key("facestream"))]
    client.close()
    assert [e["kind"] for e in events] == ["failed"] and events[0]["stream_id"] == "doomed"
