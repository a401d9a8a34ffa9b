"""Shared fixtures: a real Redis server for the session, FaceRecord factories."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import redis

from streamer.redis_server import EmbeddedRedis
from streamer.schema import FaceRecord


@pytest.fixture(scope="session")
def redis_server():
    """One embedded redis-server for the whole test session (tests may restart it)."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server):
    """URL of the session server, running and empty."""
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


def _record(rng: np.random.Generator, stream_id: str, frame: int, track: int) -> FaceRecord:
    def vec(n: int) -> np.ndarray:
        return rng.normal(size=n).astype(np.float32)

    return FaceRecord(
        stream_id=stream_id, frame_index=frame, pts=frame / 30.0 + 1e-9 * track,
        wall_time=1.7e9 + frame / 30.0, track_id=track,
        box=rng.uniform(0, 640, 4).astype(np.float32), score=float(rng.uniform(0.5, 1.0)),
        expression=vec(29), pose=vec(6), quaternion=vec(4), shape=vec(99), blendshapes=vec(53),
        expression_raw=vec(29), pose_raw=vec(6), quaternion_raw=vec(4), shape_raw=vec(99),
        model_version="test@fm1-abcdef",
    )


@pytest.fixture
def make_records():
    """make_records(frames, faces, stream_id="cam1", seed=0): `faces` tracks in each of
    `frames` frames, float32-exact vectors, in frame then track order."""
    def make(frames: int, faces: int = 2, stream_id: str = "cam1", seed: int = 0) -> list[FaceRecord]:
        rng = np.random.default_rng(seed)
        return [_record(rng, stream_id, f, t) for f in range(frames) for t in range(1, faces + 1)]
    return make


@pytest.fixture
def assert_records_equal():
    """Field-by-field equality (FaceRecord's generated __eq__ cannot compare arrays)."""
    def check(got: list[FaceRecord], want: list[FaceRecord]) -> None:
        assert len(got) == len(want)
        for g, w in zip(got, want):
            for f in dataclasses.fields(FaceRecord):
                if f.name == "extra":
                    continue
                a, b = getattr(g, f.name), getattr(w, f.name)
                if isinstance(b, np.ndarray):
                    assert a.dtype == np.float32 and np.array_equal(a, b), f.name
                else:
                    assert a == b and type(a) is type(b), f.name
    return check
