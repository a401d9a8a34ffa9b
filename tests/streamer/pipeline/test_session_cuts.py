"""A hard cut in a stream, through the real session: a ``cut`` event, and the face of
the new shot under a new track id although it is the same face at the same place."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import cv2
import numpy as np
import ray
import redis
from conftest import write_video

from streamer.config import DetectorConfig
from streamer.data.dataset import read_records
from streamer.data.events import decode_event
from streamer.data.redis_codec import events_key
from streamer.data.sinks import ParquetSink, RedisSink
from streamer.pipeline.session import launch
from workers.detector import FaceDetector

REAL = Path(__file__).resolve().parents[4] / "shared" / "data" / "real"
W, H, FPS, CUT, FRAMES, SIDE = 320, 240, 25, 15, 30, 100


def write_clip(path: Path) -> Path:
    """One real face drifting right; at frame CUT the background changes (a new shot)."""
    photo = cv2.cvtColor(cv2.imread(str(REAL / "obama-720p.jpg")), cv2.COLOR_BGR2RGB)
    x1, y1, x2, y2 = FaceDetector(DetectorConfig()).detect([photo])[0].boxes[0]
    half = max(x2 - x1, y2 - y1) * 0.75
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    face = cv2.resize(photo[int(cy - half):int(cy + half), int(cx - half):int(cx + half)], (SIDE, SIDE))
    rng = np.random.default_rng(0)
    shots = [np.clip(cv2.resize(rng.uniform(0, 255, (H // 8, W // 8, 3)).astype(np.float32), (W, H)) * 0.5 + tint,
                     0, 255).astype(np.uint8) for tint in ((70, 40, 20), (10, 60, 100))]

    def images():
        for f in range(FRAMES):
            image = shots[f >= CUT].copy()
            x = 60 + 2 * f
            image[70:70 + SIDE, x:x + SIDE] = face
            yield image

    return write_video(path, images(), FPS)


def test_a_cut_is_an_event_and_ends_the_track(tmp_path, shared_replicas, redis_url, pipeline_config):
    video = write_clip(tmp_path / "cut.mp4")
    cfg = pipeline_config
    sinks = [partial(RedisSink, cfg.redis, "shots", redis_url),
             partial(ParquetSink, cfg.parquet, "shots", {"facestream.checkpoint": "test-tiny"})]
    session = launch("shots", str(video), cfg, shared_replicas, sinks)
    try:
        summary = ray.get(session.run.remote())
    finally:
        ray.kill(session)
    client = redis.Redis.from_url(redis_url)
    try:
        events = [decode_event(f) for _, f in client.xrange(events_key(cfg.redis.key_prefix))]
    finally:
        client.close()
    cuts = [e for e in events if e["kind"] == "cut"]
    assert [(e["frame_index"], e["pts"], e["ended_tracks"]) for e in cuts] == [(CUT, CUT / FPS, 1)]
    kinds = [e["kind"] for e in events if e["kind"] != "progress"]
    assert kinds == ["started", "person", "cut", "person", "ended"]
    records = read_records(cfg.parquet.out, "shots")
    assert [r.frame_index for r in records] == list(range(FRAMES))
    assert {r.track_id for r in records if r.frame_index < CUT} == {1}
    assert {r.track_id for r in records if r.frame_index >= CUT} == {2}
    assert summary.tracks == 2
    # the same face after the cut: a new track, the same person (its identity, not its place)
    persons = [e for e in events if e["kind"] == "person"]
    assert [(e["frame_index"], e["track_id"], e["person_id"], e["reason"]) for e in persons] == [
        (0, 1, 1, "new"), (CUT, 2, 1, "linked")]
    assert persons[1]["distance"] < 0.2
    assert {r.person_id for r in records} == {1}
    assert summary.persons == 1
