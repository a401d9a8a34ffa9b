"""A stream's records as curves per person: pose, a few expression coefficients, emotion.

Read from the stream's Redis stream (the one the API's ``redis_stream`` names): the
history first, newest entries backwards until ``view.history_s`` before the newest
(entry ids are frame numbers, not times, so the cut is made on the records' wall time),
then whatever follows, by ``XREAD`` after the last id seen. Points are thinned to at most
``POINTS_PER_S`` a second per person, which is all a curve a minute wide can show.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aioredis

from streamer.data.record import BLENDSHAPE_NAMES, FaceRecord
from streamer.data.redis_codec import decode_redis, text
from workers.emotion_labels import EMOTION_CLASSES

POINTS_PER_S = 8
POSE_CURVES = ("yaw", "pitch", "roll")
# the expression coefficients shown: blendshapes a viewer recognises on a face
EXPRESSION_CURVES = ("jawOpen", "mouthSmile_L", "mouthSmile_R", "eyeBlink_L", "eyeBlink_R", "browInnerUp_L")
_EXPRESSION_AT = tuple(BLENDSHAPE_NAMES.index(n) for n in EXPRESSION_CURVES)
_PAGE = 500            # entries a round trip
_MAX_HISTORY = 40_000  # entries read back at most for the history


@dataclass
class CurvePoint:
    """One person at one moment: ``t`` unix seconds; NaN values become null in JSON."""

    person: str               # "P3" (person id) or "T7" (track id, where persons are off)
    t: float
    pose: list[float | None]
    expression: list[float | None]
    emotion: list[float | None]
    label: str


def names() -> dict[str, list[str]]:
    """The names of each curve group's values, in the order the points hold them."""
    return {"pose": list(POSE_CURVES), "expression": list(EXPRESSION_CURVES), "emotion": list(EMOTION_CLASSES)}


def point(rec: FaceRecord) -> CurvePoint:
    who = f"P{rec.person_id}" if rec.person_id is not None else f"T{rec.track_id}"
    return CurvePoint(who, float(rec.wall_time), _finite(rec.pose[:3]),
                      _finite(rec.blendshapes[list(_EXPRESSION_AT)]), _finite(rec.emotion_probs), rec.emotion)


def thin(points: list[CurvePoint], per_s: int = POINTS_PER_S) -> list[CurvePoint]:
    """At most ``per_s`` points a second per person (the first of each slot)."""
    seen: set[tuple[str, int]] = set()
    out = []
    for p in points:
        slot = (p.person, math.floor(p.t * per_s))
        if slot not in seen:
            seen.add(slot)
            out.append(p)
    return out


def to_json(points: list[CurvePoint]) -> list[dict]:
    return [asdict(p) for p in points]


async def history(client: aioredis.Redis, key: str, seconds: float) -> tuple[list[CurvePoint], str]:
    """The last ``seconds`` of the stream's records as points (oldest first), and the id
    to read on from ("0-0" for an empty stream)."""
    records: list[FaceRecord] = []
    last_id, upper, newest = "0-0", "+", None
    while len(records) < _MAX_HISTORY:
        page: Any = await client.xrevrange(key, upper, "-", count=_PAGE)   # redis-py's types are loose
        if not page:
            break
        if last_id == "0-0":
            last_id = text(page[0][0])
        done = False
        for _, fields in page:
            rec = decode_redis(fields)
            newest = rec.wall_time if newest is None else newest
            if rec.wall_time < newest - seconds:
                done = True
                break
            records.append(rec)
        if done or len(page) < _PAGE:
            break
        upper = "(" + text(page[-1][0])
    records.reverse()
    return thin([point(r) for r in records]), last_id


async def after(client: aioredis.Redis, key: str, last_id: str) -> tuple[list[CurvePoint], str]:
    """Points of the records after ``last_id``, and the new last id."""
    got: Any = await client.xread({key: last_id}, count=_PAGE)
    if not got:
        return [], last_id
    entries = got[0][1]
    return thin([point(decode_redis(fields)) for _, fields in entries]), text(entries[-1][0])


def _finite(values) -> list[float | None]:
    return [float(v) if math.isfinite(float(v)) else None for v in values]
