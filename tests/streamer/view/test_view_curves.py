"""The live view's curves read from a real Redis stream, and its cookie rule."""
from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis

from streamer.data.redis_codec import encode_redis, stream_key
from streamer.view import access, curves


def test_history_keeps_the_last_seconds_thinned_and_after_reads_on(redis_url, make_records):
    records = make_records(frames=40, faces=2)
    for r in records:             # 40 frames at 10 a second, ending at t = 103.9
        r.wall_time = 100.0 + r.frame_index / 10
    key = stream_key("facestream", "cam1")
    client = redis.Redis.from_url(redis_url)
    for r in records[:60]:
        client.xadd(key, encode_redis(r), id=f"{r.frame_index + 1}-{r.track_id}")

    async def read() -> tuple:
        aclient = aioredis.Redis.from_url(redis_url)
        try:
            old, last = await curves.history(aclient, key, seconds=1.0)
            for r in records[60:]:
                client.xadd(key, encode_redis(r), id=f"{r.frame_index + 1}-{r.track_id}")
            new, last2 = await curves.after(aclient, key, last)
            return old, last, new, last2, await curves.after(aclient, key, last2)
        finally:
            await aclient.aclose()

    old, last, new, last2, (none, same) = asyncio.run(read())
    # written so far: frames 0..29 (t 100.0..102.9); the last second of them is 101.9..102.9,
    # 11 frames a person, thinned to at most 8 a second (one slot of 1/8 s each)
    assert {p.person for p in old} == {"T1", "T2"} and last == "30-2"
    times = sorted({p.t for p in old})
    assert min(times) >= 101.9 - 1e-6 and max(times) == 102.9 and 7 <= len(times) <= 10
    by_time = {(r.wall_time, f"T{r.track_id}"): r for r in records}
    p = old[0]
    assert p.pose == [float(v) for v in by_time[(p.t, p.person)].pose[:3]]
    assert len(p.expression) == len(curves.EXPRESSION_CURVES) and len(p.emotion) == 7
    # then only what follows, once
    assert min(p.t for p in new) == 103.0 and max(p.t for p in new) == 103.9 and last2 == "40-2"
    assert none == [] and same == last2
    assert curves.names()["pose"] == ["yaw", "pitch", "roll"]


def test_the_cookie_opens_the_view_and_next_stays_on_the_site():
    value = access.cookie_value("secret")
    assert value != "secret" and len(value) == 64
    assert access.allowed("secret", {access.COOKIE: value}, {})
    assert not access.allowed("secret", {access.COOKIE: access.cookie_value("other")}, {})
    assert not access.allowed("secret", {}, {})
    assert access.allowed("secret", {}, {"authorization": "Bearer secret"})
    assert access.allowed(None, {}, {})                   # an open API, an open view
    assert access.token_matches("secret", " secret\n") and not access.token_matches(None, "")
    assert [access.safe_next(p) for p in ("/streams/a", "//evil.example/", "https://evil/", None, "/\\evil")] == \
        ["/streams/a", "/", "/", "/", "/"]
