"""StreamSession end to end on real Ray, real Redis, real encoded video with real faces.

The regressor is an untrained tiny network (the numbers mean nothing), so the checks are
about plumbing: every frame processed once and in order, exact timestamps, one stable id
per face, the same records in Redis and Parquet, and each record's values equal to what
the model computes for that face when run by hand.
"""
from __future__ import annotations

import sys
from functools import partial

import numpy as np
import pytest
import ray
import redis

from streamer.data.dataset import read_records
from streamer.data.events import decode_event
from streamer.data.redis_codec import decode_redis, events_key, stream_key
from streamer.data.sinks import ParquetSink, RedisSink
from streamer.data.sinks.base import SinkStats
from streamer.pipeline.records import RecordBuilder, pose_in_image
from streamer.pipeline.session import launch
from streamer.pipeline.status import StreamProgress, StreamState, StreamSummary
from streamer.sources.files import open_source
from workers import face_model
from workers.crops import CropRule, crop_faces, crop_to_image, to_tensor
from workers.regressor import Prediction, Regressor


def run(video, cfg, replicas, redis_url, stream_id="cam", extra_sinks=()):
    sinks = [partial(RedisSink, cfg.redis, stream_id, redis_url),
             partial(ParquetSink, cfg.parquet, stream_id, {"facestream.checkpoint": "test-tiny"}),
             *extra_sinks]
    session = launch(stream_id, str(video.path), cfg, replicas, sinks)
    try:
        return ray.get(session.run.remote()), ray.get(session.progress.remote())
    finally:
        ray.kill(session)


def redis_records(url, cfg, stream_id="cam"):
    client = redis.Redis.from_url(url)
    try:
        return [decode_redis(f) for _, f in client.xrange(stream_key(cfg.redis.key_prefix, stream_id))]
    finally:
        client.close()


def redis_events(url, cfg):
    client = redis.Redis.from_url(url)
    try:
        return [decode_event(f) for _, f in client.xrange(events_key(cfg.redis.key_prefix))]
    finally:
        client.close()


@pytest.fixture(scope="module")
def one_face_run(face_video, shared_replicas, redis_server, tiny_checkpoint, tmp_path_factory):
    from streamer.config import load_config

    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    # every frame detected: the tiny untrained network's landmarks place no face (the
    # track-driven path is tested with the shipped network in test_session_follow.py)
    cfg = load_config(overrides={"parquet": {"out": str(tmp_path_factory.mktemp("out"))},
                                 "session": {"progress_every_s": 0.0}, "detector": {"every_frames": 1}})
    summary, progress = run(face_video, cfg, shared_replicas, redis_server.url)
    return {"summary": summary, "progress": progress, "cfg": cfg,
            "redis": redis_records(redis_server.url, cfg), "events": redis_events(redis_server.url, cfg),
            "parquet": read_records(cfg.parquet.out, "cam")}


def test_every_frame_once_in_order_with_exact_pts(one_face_run, face_video):
    records = one_face_run["parquet"]
    assert [r.frame_index for r in records] == list(range(face_video.frames))
    assert [r.pts for r in records] == [i / face_video.fps for i in range(face_video.frames)]
    assert {r.track_id for r in records} == {1}


def test_redis_equals_parquet_equals_session_count(one_face_run, face_video, assert_records_equal):
    summary = one_face_run["summary"]
    assert_records_equal(one_face_run["redis"], one_face_run["parquet"])
    assert isinstance(summary, StreamSummary)   # through Ray as itself, not as JSON
    assert summary.faces == len(one_face_run["parquet"]) == face_video.frames
    assert summary.frames == face_video.frames
    assert (summary.tracks, summary.published, summary.dropped_frames, summary.decode_errors) == (1, 40, 0, 0)
    assert summary.sinks["ParquetSink"]["rows_written"] == 40 and summary.fps > 0
    # the run's figures cover every frame, whenever (or whether) its progress was asked for
    assert summary.latency_s is not None and summary.latency_s["count"] == face_video.frames
    assert summary.latency_s["buckets"][-1] == [None, face_video.frames]
    assert summary.source_fps == face_video.fps and summary.lag_s is not None and summary.lag_s > 0
    assert 0 < summary.latency_p50_s <= summary.latency_p99_s
    stages = summary.latency_stages   # where the latency went, stage by stage, in the order they follow
    assert list(stages) == ["source", "track", "model", "publish"]
    assert all(0 <= s["p50_s"] <= s["p99_s"] for s in stages.values()) and stages["model"]["p50_s"] > 0
    finished = StreamProgress(state=StreamState.RUNNING).finished(summary)   # never asked while running
    assert (finished.source_fps, finished.lag_s, finished.latency_p99_s, finished.latency_stages) == \
        (summary.source_fps, summary.lag_s, summary.latency_p99_s, summary.latency_stages)
    assert finished.latency_s is not None and finished.latency_s["count"] == face_video.frames
    assert one_face_run["events"][-1]["latency_s"]["count"] == face_video.frames    # the ended event says so too
    progress = one_face_run["progress"]
    assert isinstance(progress, StreamProgress)
    assert progress.state == StreamState.ENDED and progress.frames == 40


def test_events_started_progress_ended(one_face_run):
    events = one_face_run["events"]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "ended" and set(kinds[1:-1]) == {"progress", "person"}
    (person,) = [e for e in events if e["kind"] == "person"]    # one face, one track: its person
    assert (person["track_id"], person["person_id"], person["reason"], person["frame_index"]) == (1, 1, "new", 0)
    assert events[0]["width"] == 320 and events[0]["height"] == 240 and events[0]["frame_count_estimate"] == 40
    assert events[0]["emotion_classes"] == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert events[0]["reading"] == "mirror_average"    # a file's crops, averaged with their mirror images
    assert events[-1]["frames"] == 40 and events[-1]["faces"] == 40 and events[-1]["stream_id"] == "cam"
    frames = [e["frames"] for e in events if e["kind"] == "progress"]
    assert frames == sorted(frames)


def test_box_follows_the_moving_face(one_face_run, face_video):
    centres = np.array([(r.box[0] + r.box[2]) / 2 for r in one_face_run["parquet"]])
    side = 110
    expected = 10 + (320 - side - 20) * np.arange(40) / 39 + side / 2
    assert np.abs(centres - expected).max() < 10
    assert all(r.score > 0.9 for r in one_face_run["parquet"])


def test_values_are_the_models_for_that_face(one_face_run, face_video, tiny_checkpoint):
    """Re-crop the frame at the record's box, run the same checkpoint in-process: the raw
    fields must be that prediction, with the centre mapped into image pixels."""
    from streamer.config import SourceConfig

    regressor = Regressor.load(str(tiny_checkpoint), "cpu")
    rule = CropRule.from_meta(regressor.meta)
    records = {r.frame_index: r for r in one_face_run["parquet"]}
    with open_source(str(face_video.path), SourceConfig()) as source:
        for frame in source:
            if frame.index % 13:
                continue
            rec = records[frame.index]
            crops, affines = crop_faces(frame.image, rec.box[None].astype(np.float64), rule)
            pred = regressor(to_tensor(crops, rule))
            np.testing.assert_allclose(rec.expression_raw, pred.expression[0], atol=1e-5)
            np.testing.assert_allclose(rec.shape_raw, pred.shape[0], atol=1e-5)
            np.testing.assert_allclose(rec.quaternion_raw, pred.quaternion[0], atol=1e-5)
            centre = crop_to_image(pred.centre[:, None], affines)[0, 0]
            np.testing.assert_allclose(rec.pose_raw[:3], pred.euler[0], atol=1e-3)
            np.testing.assert_allclose(rec.pose_raw[3:5], centre, atol=1e-3)
            np.testing.assert_allclose(rec.pose_raw[5], pred.scale[0] * affines[0, 0, 0], rtol=1e-5)
    assert {r.model_version for r in records.values()} == {regressor.version}


def test_smoothed_fields(one_face_run):
    records = one_face_run["parquet"]
    first = records[0]
    # the first sample of a track passes through every filter unchanged
    np.testing.assert_allclose(first.expression, first.expression_raw, atol=1e-6)
    np.testing.assert_allclose(first.quaternion, first.quaternion_raw, atol=1e-6)
    np.testing.assert_allclose(first.pose, first.pose_raw, atol=1e-3)
    # identity is the running mean over the track
    np.testing.assert_allclose(records[-1].shape, np.mean([r.shape_raw for r in records], axis=0), atol=1e-5)
    fm = face_model.load()
    for r in records:
        np.testing.assert_allclose(r.blendshapes, fm.blendshapes_from_eta(r.expression), atol=1e-6)
        assert abs(np.linalg.norm(r.quaternion) - 1) < 1e-5
    # smoothing moves the position less than the raw jitter does, never beyond the raw range
    raw_x = np.array([r.pose_raw[3] for r in records])
    smooth_x = np.array([r.pose[3] for r in records])
    assert raw_x.min() - 1e-3 <= smooth_x.min() and smooth_x.max() <= raw_x.max() + 1e-3


def test_two_faces_keep_their_ids(two_face_video, shared_replicas, redis_url, pipeline_config,
                                  assert_records_equal):
    summary, _ = run(two_face_video, pipeline_config, shared_replicas, redis_url, stream_id="two")
    records = read_records(pipeline_config.parquet.out, "two")
    assert_records_equal(redis_records(redis_url, pipeline_config, "two"), records)
    assert (summary.frames, summary.faces, summary.tracks) == (40, 80, 2)
    by_frame: dict[int, list] = {}
    for r in records:
        by_frame.setdefault(r.frame_index, []).append(r)
    assert sorted(by_frame) == list(range(40))
    lanes = {}
    for rs in by_frame.values():
        assert len(rs) == 2 and len({r.track_id for r in rs}) == 2
        for r in rs:
            lanes.setdefault("upper" if r.box[1] < 120 else "lower", set()).add(r.track_id)
    assert lanes["upper"].isdisjoint(lanes["lower"])
    assert len(lanes["upper"]) == len(lanes["lower"]) == 1


def test_every_kth_frame(face_video, shared_replicas, redis_url, pipeline_config):
    pipeline_config.source.every = 3
    pipeline_config.detector.batch_size = 3
    pipeline_config.session.max_inflight_batches = 1
    summary, _ = run(face_video, pipeline_config, shared_replicas, redis_url, stream_id="k3")
    records = read_records(pipeline_config.parquet.out, "k3")
    assert [r.frame_index for r in records] == list(range(0, 40, 3))
    assert [r.pts for r in records] == [i / 25 for i in range(0, 40, 3)]
    assert (summary.frames, summary.faces, summary.tracks) == (14, 14, 1)


class ExplodingSink:
    """Takes events, refuses records: the session must fail and say so everywhere."""

    stats = SinkStats()

    def write(self, records):
        raise RuntimeError("disk on fire")

    def event(self, kind, **info):
        pass

    def flush(self):
        pass

    def committed(self):
        return None

    def close(self):
        pass


def test_a_failing_sink_fails_the_session_with_its_error(face_video, shared_replicas, redis_url,
                                                         pipeline_config):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with pytest.raises(ray.exceptions.RayTaskError) as info:
        run(face_video, pipeline_config, shared_replicas, redis_url, stream_id="bad",
            extra_sinks=[ExplodingSink])
    assert isinstance(info.value.cause, RuntimeError) and "disk on fire" in str(info.value.cause)
    kinds = [e["kind"] for e in redis_events(redis_url, pipeline_config)]
    assert kinds[0] == "started" and kinds[-1] == "failed"
    failed = redis_events(redis_url, pipeline_config)[-1]
    assert "disk on fire" in failed["error"]


def test_pose_in_image_maps_centre_and_scale():
    rule = CropRule(size=64, enlarge=0.25)
    boxes = np.array([[100.0, 50.0, 180.0, 150.0], [0.0, 0.0, 32.0, 32.0]])
    _, affines = crop_faces(np.zeros((240, 320, 3), np.uint8), boxes, rule)
    n = len(boxes)
    pred = Prediction(expression=np.zeros((n, 29)), rotation=np.tile(np.eye(3), (n, 1, 1)),
                      euler=np.array([[10.0, -5.0, 2.0], [0.0, 0.0, 0.0]]),
                      quaternion=np.tile([1.0, 0, 0, 0], (n, 1)),
                      centre=np.array([[32.0, 32.0], [0.0, 64.0]]), scale=np.array([4.0, 2.0]),
                      shape=np.zeros((n, 99)), landmarks=np.zeros((n, 68, 2)))
    pose = pose_in_image(pred, affines)
    side = np.array([100.0, 32.0]) * 1.5  # max(w, h) enlarged 25% on each side
    np.testing.assert_allclose(pose[:, :3], pred.euler)
    np.testing.assert_allclose(pose[0, 3:5], [140.0, 100.0])            # crop centre -> box centre
    np.testing.assert_allclose(pose[1, 3:5], [16 - side[1] / 2, 16 + side[1] / 2])  # crop corner
    np.testing.assert_allclose(pose[:, 5], pred.scale * side / 64)


def test_record_builder_drops_the_smoother_of_an_ended_track():
    from streamer.pipeline.pipes import FrameWork
    from streamer.pipeline.smoothing import SmootherBank

    smoothers = SmootherBank()
    builder = RecordBuilder("s", "v", smoothers, face_model.load().blendshapes_from_eta)
    smoothers.update(7, 0.0, np.zeros(29), [1, 0, 0, 0], np.zeros(3), np.zeros(99))
    ended = FrameWork(index=5, pts=0.2, captured=0.0, tracks=[], affines=np.zeros((0, 2, 3)), ended_ids=[7])
    assert builder.frame(ended, None, 0) == [] and 7 not in smoothers


def test_pipe_bounds_work_in_flight_not_just_queue_length():
    import asyncio

    from streamer.pipeline.pipes import Pipe

    async def go():
        pipe, produced = Pipe[int](2), []

        async def producer():
            for i in range(5):
                await pipe.reserve()
                produced.append(i)
                pipe.put(i)
            pipe.close()

        task = asyncio.create_task(producer())
        await asyncio.sleep(0.01)
        assert produced == [0, 1]             # two slots: the third item waits
        assert await pipe.get() == 0          # taken but not released: still in flight
        await asyncio.sleep(0.01)
        assert produced == [0, 1]
        pipe.release()
        await asyncio.sleep(0.01)
        assert produced == [0, 1, 2]
        got = []
        while (item := await pipe.get()) is not None:
            got.append(item)
            pipe.release()
        await task
        return got

    assert asyncio.run(go()) == [1, 2, 3, 4]


def test_a_live_stream_ends_after_max_duration(face_video, shared_replicas, redis_url, pipeline_config):
    import time

    from streamer.testbed import RtspServer

    pipeline_config.source.max_duration_s = 2.0
    with RtspServer(face_video.path) as server:
        sinks = [partial(RedisSink, pipeline_config.redis, "limited", redis_url)]
        session = launch("limited", server.url, pipeline_config, shared_replicas, sinks)
        t0 = time.monotonic()
        summary = ray.get(session.run.remote(), timeout=60)
    assert summary.state == StreamState.ENDED and 2.0 <= summary.seconds < 4.0
    # two seconds of frames, plus what the source had buffered (queue_frames) when it started
    bound = 2.0 * face_video.fps + pipeline_config.source.queue_frames + 5
    assert 0 < summary.frames <= bound and time.monotonic() - t0 < 30
    ray.kill(session)


def _still_face_frames(probs_per_frame, box=(100.0, 50.0, 220.0, 190.0), yaw=0.0, light=None):
    """(frame work, prediction) per frame: one track, a still face, given emotion probs;
    ``light``: per frame the crop's (luminance, contrast, sharpness), else not measured."""
    from streamer.pipeline.pipes import FrameWork
    from streamer.tracking.tracker import Track
    from workers.pose import matrix_from_euler, quaternion_from_matrix

    rule = CropRule(size=64, enlarge=0.25)
    R = matrix_from_euler(yaw, 0.0, 0.0)
    _, affines = crop_faces(np.zeros((240, 320, 3), np.uint8), np.array([box]), rule)
    for k, probs in enumerate(probs_per_frame):
        pred = Prediction(expression=np.zeros((1, 29)), rotation=R[None], euler=np.array([[yaw, 0.0, 0.0]]),
                          quaternion=quaternion_from_matrix(R)[None], centre=np.array([[32.0, 32.0]]),
                          scale=np.array([4.0]), shape=np.zeros((1, 99)), landmarks=np.zeros((1, 68, 2)),
                          emotion_probs=np.asarray(probs, np.float32)[None])
        if light is not None:
            pred.luminance, pred.contrast, pred.sharpness = (np.array([v], np.float32) for v in light[k])
        work = FrameWork(index=k, pts=k / 30.0, captured=0.0, tracks=[Track(3, np.array(box), 0.9, 0)],
                          affines=affines, ended_ids=[])
        yield work, pred


def test_still_face_emotion_label_does_not_flicker_though_frames_do():
    """happy and neutral nearly tied, per-frame noise tips the raw label back and forth;
    the smoothed probabilities (and the held label) keep one label."""
    from streamer.config import EmotionConfig
    from streamer.pipeline.smoothing import SmootherBank

    rng = np.random.default_rng(0)
    base = np.array([0.02, 0.02, 0.02, 0.46, 0.44, 0.02, 0.02])
    frames = []
    for _ in range(90):
        p = np.clip(base + rng.normal(scale=0.03, size=7) * np.isin(np.arange(7), (3, 4)), 0, None)
        frames.append(p / p.sum())
    builder = RecordBuilder("s", "v", SmootherBank(), face_model.load().blendshapes_from_eta,
                            EmotionConfig(min_prob=0.3))
    recs = [r for work, pred in _still_face_frames(frames) for r in builder.frame(work, pred, 0)]
    raw = [r.emotion_raw for r in recs]
    assert {"happy", "neutral"} <= set(raw) and sum(a != b for a, b in zip(raw, raw[1:])) > 10
    assert [r.emotion for r in recs] == ["happy"] * len(recs)
    np.testing.assert_allclose([r.emotion_probs.sum() for r in recs], 1.0, rtol=1e-5)
    np.testing.assert_allclose(recs[0].emotion_probs, frames[0], rtol=1e-5)   # the first sample passes
    assert np.array_equal(recs[5].emotion_probs_raw, frames[5].astype(np.float32))
    assert abs(recs[-1].emotion_probs[3] - np.mean([f[3] for f in frames[-30:]])) < 0.02


def test_emotion_abstains_for_small_and_turned_faces_and_without_a_classifier():
    from streamer.config import EmotionConfig
    from streamer.pipeline.smoothing import SmootherBank

    happy = [np.array([0.02, 0.02, 0.02, 0.88, 0.02, 0.02, 0.02])] * 3
    def labels(box=(100.0, 50.0, 220.0, 190.0), yaw=0.0, probs=happy):
        b = RecordBuilder("s", "v", SmootherBank(), face_model.load().blendshapes_from_eta,
                          EmotionConfig(min_face_px=40, max_yaw=50))
        return [(r.emotion, r.emotion_raw) for w, p in _still_face_frames(probs, box, yaw) for r in b.frame(w, p, 0)]
    assert labels() == [("happy", "happy")] * 3
    assert labels(box=(100.0, 50.0, 130.0, 190.0)) == [("too_small", "too_small")] * 3
    assert labels(yaw=70.0) == [("too_turned", "too_turned")] * 3
    assert labels(probs=[np.full(7, np.nan)] * 3) == [("uncertain", "uncertain")] * 3


def test_a_face_gone_dark_or_blurred_abstains_in_that_frame_and_reads_again_after():
    """Light and sharpness are this frame's (not smoothed): both labels abstain at once,
    and the held class comes back with the light."""
    from streamer.config import EmotionConfig
    from streamer.pipeline.smoothing import SmootherBank

    happy = [np.array([0.02, 0.02, 0.02, 0.88, 0.02, 0.02, 0.02])] * 4
    rule = EmotionConfig()
    lit, dark, blurred = (120.0, 50.0, 0.8), (rule.min_luminance - 5, 6.0, 0.8), (120.0, 50.0, rule.min_sharpness / 2)
    b = RecordBuilder("s", "v", SmootherBank(), face_model.load().blendshapes_from_eta, rule)
    got = [(r.emotion, r.emotion_raw) for w, p in _still_face_frames(happy, light=[lit, dark, blurred, lit])
           for r in b.frame(w, p, 0)]
    assert got == [("happy", "happy"), ("too_dark", "too_dark"), ("too_blurred", "too_blurred"), ("happy", "happy")]


def test_a_crowd_frames_blendshapes_are_solved_together_and_match_one_face_at_a_time():
    """The builder reads a frame's smoothed expressions as blendshapes in one batched solve:
    each record's weights are those of its own expression, as if solved alone."""
    from streamer.pipeline.pipes import FrameWork
    from streamer.pipeline.smoothing import SmootherBank
    from streamer.tracking.tracker import Track
    from workers.pose import matrix_from_euler, quaternion_from_matrix

    faces, model = 12, face_model.load()
    rng = np.random.default_rng(3)
    expression = rng.normal(scale=0.6, size=(faces, 29))
    R = np.repeat(matrix_from_euler(0.0, 0.0, 0.0)[None], faces, axis=0)
    boxes = np.array([[20.0 * k, 10.0, 20.0 * k + 18, 28.0] for k in range(faces)])
    _, affines = crop_faces(np.zeros((64, 320, 3), np.uint8), boxes, CropRule(size=64, enlarge=0.25))
    pred = Prediction(expression=expression, rotation=R, euler=np.zeros((faces, 3)),
                      quaternion=np.stack([quaternion_from_matrix(r) for r in R]),
                      centre=np.full((faces, 2), 32.0), scale=np.full(faces, 4.0), shape=np.zeros((faces, 99)),
                      landmarks=np.zeros((faces, 68, 2)), emotion_probs=np.full((faces, 7), 1 / 7, np.float32))
    work = FrameWork(index=0, pts=0.0, captured=0.0, tracks=[Track(k + 1, boxes[k], 0.9, 0) for k in range(faces)],
                     affines=affines, ended_ids=[])
    records = RecordBuilder("s", "v", SmootherBank(), model.blendshapes_from_eta).frame(work, pred, 0)
    assert [r.track_id for r in records] == list(range(1, faces + 1))
    for r, eta in zip(records, expression):   # the first sample of a track passes the smoother as it is
        np.testing.assert_allclose(r.blendshapes, model.blendshapes_from_eta(eta.astype(np.float32)), atol=1e-6)
    assert len({r.blendshapes.tobytes() for r in records}) == faces
