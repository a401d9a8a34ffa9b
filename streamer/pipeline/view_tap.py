"""What a session gives the live view: a few small frames a second, only while watched.

A session calls :meth:`ViewTap.offer` with every frame it tracks and
:meth:`ViewTap.published` with each batch of frames it published. Nobody watching, that
costs a comparison of two clocks per frame and, twice a second, one ``EXISTS`` of the
stream's watch key (:func:`~streamer.data.view_frame.watch_key`), sent to the session's
sink thread so that the event loop never waits on Redis. Watched, every ``1 / view.fps``
seconds a frame is shrunk to ``view.max_side`` and kept until its records are published;
then the JPEG and the records go to Redis under the frame key, with a TTL of
``view.watch_ttl_s``, again from the sink thread. The drawing is the view's own work.
"""
from __future__ import annotations

import io
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import redis
from PIL import Image

from streamer.config import Config
from streamer.data.record import FaceRecord
from streamer.data.view_frame import ViewFrame, encode_view_frame, frame_key, watch_key
from streamer.sources.frames import Frame

log = logging.getLogger(__name__)

_CHECK_EVERY_S = 0.5     # how often the watch key is looked at
_MAX_PENDING = 8         # frames kept awaiting their records (more: the oldest go)


@dataclass
class _Pending:
    image: np.ndarray    # RGB, already shrunk
    scale: float
    pts: float


class ViewTap:
    """The live view's side of one session; ``redis_url`` None (no Redis known) or
    ``view.port == 0`` (no view served) make every call a no-op."""

    def __init__(self, cfg: Config, stream_id: str, redis_url: str | None, runner: Executor) -> None:
        self._cfg = cfg.view
        self._enabled = redis_url is not None and cfg.view.port != 0
        self._runner = runner
        self._client = (redis.Redis.from_url(redis_url, socket_timeout=cfg.redis.connect_timeout_s,
                                             socket_connect_timeout=cfg.redis.connect_timeout_s)
                        if self._enabled and redis_url else None)
        self._watch_key = watch_key(cfg.redis.key_prefix, stream_id)
        self._frame_key = frame_key(cfg.redis.key_prefix, stream_id)
        self.watched = False
        self._checking = False
        self._next_check = 0.0
        self._next_grab = 0.0
        self._pending: dict[int, _Pending] = {}

    def offer(self, frame: Frame) -> None:
        """A frame being tracked: kept (shrunk) when watched and one is due."""
        if not self._enabled:
            return
        now = time.monotonic()
        if now >= self._next_check and not self._checking:
            self._next_check = now + _CHECK_EVERY_S
            self._checking = True
            self._runner.submit(self._check)
        if not self.watched or now < self._next_grab:
            return
        self._next_grab = now + 1.0 / self._cfg.fps
        image, scale = shrink(frame.image, self._cfg.max_side)
        self._pending[frame.index] = _Pending(image, scale, frame.pts)
        while len(self._pending) > _MAX_PENDING:
            del self._pending[min(self._pending)]

    def published(self, frame_indices: Sequence[int], records: Sequence[FaceRecord]) -> None:
        """Frames published with their records: the kept ones go to Redis."""
        if not self._pending:
            return
        for index in frame_indices:
            kept = self._pending.pop(index, None)
            if kept is not None:
                mine = [r for r in records if r.frame_index == index]
                self._runner.submit(self._send, index, kept, mine)

    def _check(self) -> None:
        assert self._client is not None
        try:
            self.watched = bool(self._client.exists(self._watch_key))
        except redis.RedisError:
            self.watched = False   # Redis away: the sinks say so; the view just goes quiet
        finally:
            self._checking = False

    def _send(self, index: int, kept: _Pending, records: list[FaceRecord]) -> None:
        assert self._client is not None
        frame = ViewFrame(index, kept.pts, time.time(), kept.scale, jpeg(kept.image, self._cfg.jpeg_quality), records)
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(self._frame_key)
            pipe.hset(self._frame_key, mapping=encode_view_frame(frame))   # type: ignore[arg-type]
            pipe.pexpire(self._frame_key, int(self._cfg.watch_ttl_s * 1000))
            pipe.execute()
        except redis.RedisError as e:
            log.debug("live view frame not sent: %s", e)


def shrink(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` with its longest side at most ``max_side``, and the scale applied."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image.copy(), 1.0
    s = max_side / max(h, w)
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return small, small.shape[1] / w


def jpeg(image: np.ndarray, quality: int) -> bytes:
    """An RGB image as JPEG bytes."""
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(out, "JPEG", quality=quality)
    return out.getvalue()
