"""Persons through the real session on real faces: shots of two people cut together
(A, B, A, then A and B side by side) give four shots' tracks but two persons, with the
person ids in Parquet and Redis and a ``person`` event for every track."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import av
import cv2
import numpy as np
import ray
import redis
from conftest import write_video

from streamer.data.dataset import read_records
from streamer.data.events import decode_event
from streamer.data.redis_codec import decode_redis, events_key, stream_key
from streamer.data.sinks import ParquetSink, RedisSink
from streamer.pipeline.session import launch

REAL = Path(__file__).resolve().parents[4] / "shared" / "data" / "real"
W, H, SIDE, SHOT, FPS = 400, 240, 180, 20, 25
PEOPLE = {"A": REAL / "video" / "st_wda_kh.mp4", "B": REAL / "video" / "vr_2.mp4"}


def _faces(path: Path, n: int) -> list[np.ndarray]:
    out = []
    with av.open(str(path)) as c:
        for k, frame in enumerate(c.decode(video=0)):
            if k >= 2 * n:
                break
            if k % 2 == 0:
                image = frame.to_ndarray(format="rgb24")
                s = min(image.shape[:2])
                out.append(cv2.resize(image[:s, (image.shape[1] - s) // 2:][:, :s], (SIDE, SIDE)))
    return out


def write_shots(path: Path) -> list[list[str]]:
    """A, B, A, then A|B; each shot on its own background. Returns who is in each shot."""
    faces = {k: _faces(p, 4 * SHOT) for k, p in PEOPLE.items()}
    shots = [["A"], ["B"], ["A"], ["A", "B"]]
    rng = np.random.default_rng(1)

    def images():
        used = {"A": 0, "B": 0}
        for people in shots:
            background = np.full((H, W, 3), rng.uniform(30, 220, 3), np.uint8)
            for _ in range(SHOT):
                image = background.copy()
                xs = [(W - SIDE) // 2] if len(people) == 1 else [10, W - SIDE - 10]
                for person, x in zip(people, xs):
                    image[30:30 + SIDE, x:x + SIDE] = faces[person][used[person]]
                    used[person] += 1
                yield image

    write_video(path, images(), FPS)
    return shots


def test_tracks_of_one_face_share_a_person(tmp_path, shared_replicas, redis_url, pipeline_config):
    write_shots(tmp_path / "shots.mp4")
    cfg = pipeline_config
    sinks = [partial(RedisSink, cfg.redis, "people", redis_url),
             partial(ParquetSink, cfg.parquet, "people", {"facestream.checkpoint": "test-tiny"})]
    session = launch("people", str(tmp_path / "shots.mp4"), cfg, shared_replicas, sinks)
    try:
        summary = ray.get(session.run.remote())
    finally:
        ray.kill(session)
    records = read_records(cfg.parquet.out, "people")
    shot = {r.track_id: r.frame_index // SHOT for r in records}
    assert sorted(set(shot.values())) == [0, 1, 2, 3] and summary.tracks == 5   # every cut ends every track

    def person(shot_index: int, side: str = "any") -> set[int | None]:
        return {r.person_id for r in records if r.frame_index // SHOT == shot_index
                and side in ("any", "left" if (r.box[0] + r.box[2]) / 2 < W / 2 else "right")}

    a, b = person(0), person(1)
    assert len(a) == 1 and len(b) == 1 and a != b
    assert person(2) == a                              # A again after B: A's person
    assert person(3, "left") == a and person(3, "right") == b   # both at once: each their own
    assert summary.persons == 2
    client = redis.Redis.from_url(redis_url)
    try:
        entries = client.xrange(stream_key(cfg.redis.key_prefix, "people"))
        events = [decode_event(f) for _, f in client.xrange(events_key(cfg.redis.key_prefix))]
    finally:
        client.close()
    assert [decode_redis(f).person_id for _, f in entries] == [r.person_id for r in records]
    people = [e for e in events if e["kind"] == "person"]
    assert sorted(e["track_id"] for e in people) == sorted(shot)            # one event per track
    assert [e["reason"] for e in people].count("linked") == 3               # A, A and B again


def _run(name: str, video: Path, cfg, replicas, redis_url: str) -> list:
    sinks = [partial(ParquetSink, cfg.parquet, name, {"facestream.checkpoint": "test-tiny"})]
    session = launch(name, str(video), cfg, replicas, sinks, redis_url=redis_url)
    try:
        ray.get(session.run.remote())
    finally:
        ray.kill(session)
    return read_records(cfg.parquet.out, name)


def test_with_the_gallery_one_face_on_two_streams_is_one_person(tmp_path, shared_replicas, redis_url,
                                                                 pipeline_config):
    from streamer.persons.gallery import GALLERY_FIRST_ID

    write_shots(tmp_path / "shots.mp4")   # A, B, A, A|B
    cfg = pipeline_config
    cfg.identity.gallery = True
    first = _run("cam1", tmp_path / "shots.mp4", cfg, shared_replicas, redis_url)
    second = _run("cam2", tmp_path / "shots.mp4", cfg, shared_replicas, redis_url)
    people = {r.person_id for r in first}
    assert len(people) == 2 and min(people) > GALLERY_FIRST_ID
    # the second camera's faces are the first camera's persons, shot by shot
    by_shot = [sorted({(round(float(r.box[0]) / W), r.person_id) for r in records if r.frame_index // SHOT == k})
               for records in (first, second) for k in range(4)]
    assert by_shot[:4] == by_shot[4:]


def test_a_live_stream_gets_its_persons_without_waiting_for_them(tmp_path, shared_replicas, redis_url,
                                                                  pipeline_config):
    """Live: records never wait for an embedding; each track's person comes with a person
    event once its samples are back, and the shots' faces end as the file's do."""
    from streamer.testbed import RtspServer

    write_shots(tmp_path / "shots.mp4")
    cfg = pipeline_config
    cfg.source.max_duration_s = 4.0   # the server loops the 3.2 s of shots
    with RtspServer(tmp_path / "shots.mp4") as server:
        sinks = [partial(RedisSink, cfg.redis, "live", redis_url)]
        session = launch("live", server.url, cfg, shared_replicas, sinks)
        try:
            summary = ray.get(session.run.remote(), timeout=120)
        finally:
            ray.kill(session)
    client = redis.Redis.from_url(redis_url)
    try:
        records = [decode_redis(f) for _, f in client.xrange(stream_key(cfg.redis.key_prefix, "live"))]
        events = [decode_event(f) for _, f in client.xrange(events_key(cfg.redis.key_prefix))]
    finally:
        client.close()
    assert summary.frames > 0 and all(r.person_id is not None for r in records)
    people = [e for e in events if e["kind"] == "person" and e["stream_id"] == "live"]
    tracks = {r.track_id for r in records}
    assert {e["track_id"] for e in people} <= tracks and len(people) >= len(tracks)   # every track announced
    final = {}
    for e in people:
        final[e["track_id"]] = e["person_id"]
    assert len(set(final.values())) == 2     # two people, whatever the provisional ids on the way
