"""The person gallery of streamer.persons.gallery against a real Redis server."""
from __future__ import annotations

import numpy as np
import redis

from streamer.config import IdentityConfig, RedisConfig
from streamer.persons.gallery import GALLERY_FIRST_ID, RedisGallery, gallery_key

CFG = IdentityConfig(gallery=True, gallery_ttl_s=60.0, same_person_max=0.5)


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128)
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_persons_seen_by_one_stream_are_found_by_another(redis_url):
    rcfg = RedisConfig(key_prefix="gtest")
    cam1, cam2 = RedisGallery(CFG, rcfg, redis_url, "cam1"), RedisGallery(CFG, rcfg, redis_url, "cam2")
    a, b = cam1.new_person(1), cam2.new_person(1)
    assert a >= GALLERY_FIRST_ID and b == a + 1        # numbered by Redis, above every track id
    face = _unit(0)
    cam1.remember(a, face, 3)
    found = cam2.find(face + 0.01, exclude=set())
    assert found is not None and found[0] == a and np.allclose(found[1], face)
    assert cam2.find(_unit(1), exclude=set()) is None    # someone else
    assert cam2.find(face, exclude={a}) is None          # on screen in cam2 under another track
    client = redis.Redis.from_url(redis_url)
    try:
        key = gallery_key("gtest", a)
        assert 0 < client.ttl(key) <= 60
        assert set(client.hgetall(key)) == {b"e", b"n", b"stream"}   # the embedding, a count, a stream: no more
        assert client.hget(key, "stream") == b"cam1"
    finally:
        client.close()


def test_without_redis_a_stream_keeps_its_own_ids():
    gallery = RedisGallery(CFG, RedisConfig(connect_timeout_s=0.5), "redis://127.0.0.1:1/0", "cam")
    assert gallery.new_person(7) == 7
    assert gallery.find(_unit(0), exclude=set()) is None
    gallery.remember(GALLERY_FIRST_ID + 5, _unit(0), 1)
    assert gallery.errors == 3
