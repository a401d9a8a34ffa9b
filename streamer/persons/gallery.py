"""Where a stream's persons get their ids, and whether other streams' persons are found.

:class:`StreamPersons` (the default) keeps persons to the stream: a new person's id is the
id of its first track. :class:`RedisGallery` (``identity.gallery: true``) shares persons
between the streams of a deployment, so that one face on two cameras gets one id: each
person's mean embedding lives in Redis under ``<prefix>:gallery:<person id>`` for
``identity.gallery_ttl_s`` after it was last seen, and a track that matches no person of
its own stream is matched against the gallery before it starts a new person. Gallery ids
are numbered by Redis from ``GALLERY_FIRST_ID`` up, above any track id, so that a stream
which cannot reach Redis falls back to its own ids without a collision.

What is stored: 128 float32 numbers per person (an embedding, from which the face cannot
be redrawn but which can tell whether a new photo shows the same person), a count and the
stream that first saw it; nothing else, and nothing of it goes to the records. Deleting the
keys ``<prefix>:gallery:*`` erases it (docs/design.md, "Persons", says how); the TTL
erases each person anyway once no stream has seen it for that long.
"""
from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import redis

from streamer.config import IdentityConfig, RedisConfig
from streamer.data.sinks.redis_sink import redis_client

GALLERY_FIRST_ID = 1_000_000_000
_SCAN = 500
log = logging.getLogger(__name__)


def gallery_key(prefix: str, person_id: int | str = "*") -> str:
    return f"{prefix}:gallery:{person_id}"


class PersonIds(Protocol):
    """Where a stream's new persons get their ids and how persons beyond it are found."""

    def new_person(self, track_id: int) -> int: ...

    def find(self, embedding: np.ndarray, exclude: set[int]) -> tuple[int, np.ndarray] | None:
        """The nearest person beyond this stream's and its mean embedding, or None."""
        ...

    def remember(self, person_id: int, mean: np.ndarray, count: int) -> None: ...


class StreamPersons:
    """Persons of this stream only: a person's id is its first track's id."""

    def new_person(self, track_id: int) -> int:
        return track_id

    def find(self, embedding: np.ndarray, exclude: set[int]) -> tuple[int, np.ndarray] | None:
        return None

    def remember(self, person_id: int, mean: np.ndarray, count: int) -> None:
        pass


class RedisGallery:
    """Persons shared by every stream that uses the same Redis and key prefix.

    Redis errors never stop a stream: the person then stays the stream's own (an id from
    its tracks) and the error is counted in :attr:`errors`.
    """

    def __init__(self, cfg: IdentityConfig, redis_cfg: RedisConfig, url: str, stream_id: str):
        from workers.identity import FaceIdentity

        self.cfg = cfg
        self.prefix = redis_cfg.key_prefix
        self.stream_id = stream_id
        self._client = redis_client(url, redis_cfg.connect_timeout_s)
        self._distance = FaceIdentity.distance
        self.errors = 0

    def new_person(self, track_id: int) -> int:
        try:
            return GALLERY_FIRST_ID + int(self._client.incr(f"{self.prefix}:gallery-next"))
        except redis.RedisError as e:
            self._failed(e)
            return track_id

    def find(self, embedding: np.ndarray, exclude: set[int]) -> tuple[int, np.ndarray] | None:
        try:
            ids, means = self._all(exclude)
        except redis.RedisError as e:
            self._failed(e)
            return None
        if not ids:
            return None
        d = self._distance(np.asarray(embedding, np.float64)[None], means)[0]
        best = int(np.argmin(d))
        return (ids[best], means[best]) if d[best] <= self.cfg.same_person_max else None

    def remember(self, person_id: int, mean: np.ndarray, count: int) -> None:
        if person_id < GALLERY_FIRST_ID:
            return   # a fallback id: not the gallery's
        key = gallery_key(self.prefix, person_id)
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.hset(key, mapping={"e": np.asarray(mean, "<f4").tobytes(), "n": count})
            pipe.hsetnx(key, "stream", self.stream_id)
            pipe.expire(key, int(self.cfg.gallery_ttl_s))
            pipe.execute()
        except redis.RedisError as e:
            self._failed(e)

    def _all(self, exclude: set[int]) -> tuple[list[int], np.ndarray]:
        keys = [k.decode() for k in self._client.scan_iter(gallery_key(self.prefix), count=_SCAN)]
        wanted = [(int(k.rsplit(":", 1)[1]), k) for k in keys]
        wanted = [(pid, k) for pid, k in wanted if pid not in exclude]
        pipe = self._client.pipeline(transaction=False)
        for _, k in wanted:
            pipe.hget(k, "e")
        found = [(pid, np.frombuffer(e, "<f4")) for (pid, _), e in zip(wanted, pipe.execute()) if e]
        if not found:
            return [], np.zeros((0, 0))
        return [pid for pid, _ in found], np.stack([e for _, e in found]).astype(np.float64)

    def _failed(self, error: Exception) -> None:
        self.errors += 1
        if self.errors == 1 or self.errors % 100 == 0:
            log.warning("person gallery of stream %s: %s (%d errors)", self.stream_id, error, self.errors)

