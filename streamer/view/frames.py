"""A watched stream's frames, annotated, as MJPEG (``multipart/x-mixed-replace``).

While a viewer's connection is open, :func:`mjpeg` keeps the stream's watch key alive
(TTL ``view.watch_ttl_s``, refreshed at a third of it) and sends each new frame the
session left under the frame key (streamer/data/view_frame.py), drawn as the annotated
video is (:func:`streamer.report.annotate.draw_records`: box, person and track id,
emotion, pose axes and angles). Until the first frame arrives it sends a placeholder, so
the page shows that it is waiting rather than nothing. The boundary follows each frame
at once: browsers show a part when the next boundary arrives.
"""
from __future__ import annotations

import asyncio
import io
import time
from dataclasses import replace
from typing import AsyncIterator

import cv2
import numpy as np
import redis.asyncio as aioredis
from PIL import Image
from redis.exceptions import RedisError

from streamer.config import Config
from streamer.data.record import FaceRecord
from streamer.data.view_frame import ViewFrame, decode_view_frame, frame_key, watch_key
from streamer.report.annotate import draw_records

BOUNDARY = "facestream-frame"
MEDIA_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"


def annotated_jpeg(frame: ViewFrame, cfg: Config) -> bytes:
    """The frame's JPEG with its records drawn on it (records scaled to the JPEG's pixels)."""
    image = np.array(Image.open(io.BytesIO(frame.jpeg)).convert("RGB"))
    draw_records(image, [_scaled(r, frame.scale) for r in frame.records], cfg.annotate)
    return _encode(image, cfg.view.jpeg_quality)


def placeholder_jpeg(text: str, cfg: Config) -> bytes:
    """A dark 16:9 frame saying ``text``: what the page shows before the first frame."""
    image = np.full((360, 640, 3), 24, np.uint8)
    cv2.putText(image, text, (24, 190), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (200, 200, 200), 2, cv2.LINE_AA)
    return _encode(image, cfg.view.jpeg_quality)


def part(jpeg: bytes) -> bytes:
    """One MJPEG part, ended by the next boundary."""
    return (f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg
            + f"\r\n--{BOUNDARY}\r\n".encode())


async def latest(client: aioredis.Redis, cfg: Config, stream_id: str) -> ViewFrame | None:
    """The newest frame the stream left, or None."""
    return decode_view_frame(await client.hgetall(frame_key(cfg.redis.key_prefix, stream_id)))


async def watch(client: aioredis.Redis, cfg: Config, stream_id: str) -> None:
    """Mark the stream watched for ``view.watch_ttl_s``."""
    await client.set(watch_key(cfg.redis.key_prefix, stream_id), b"1", px=int(cfg.view.watch_ttl_s * 1000))


async def mjpeg(client: aioredis.Redis, cfg: Config, stream_id: str,
                stopping: asyncio.Event) -> AsyncIterator[bytes]:
    """The MJPEG body for one viewer; ends when the server stops (a closed connection
    cancels it)."""
    loop = asyncio.get_running_loop()
    yield f"--{BOUNDARY}\r\n".encode()
    yield part(placeholder_jpeg(f"{stream_id}: waiting for frames", cfg))
    shown: tuple[int, float] | None = None
    refresh_at = 0.0
    poll_s = 0.5 / cfg.view.fps
    while not stopping.is_set():
        now = time.monotonic()
        try:
            if now >= refresh_at:
                await watch(client, cfg, stream_id)
                refresh_at = now + cfg.view.watch_ttl_s / 3
            frame = await latest(client, cfg, stream_id)
        except (RedisError, OSError):   # Redis away (the service stopping): the viewer sees it
            yield part(placeholder_jpeg(f"{stream_id}: Redis unreachable", cfg))
            return
        if frame is not None and (frame.frame_index, frame.wall_time) != shown:
            shown = (frame.frame_index, frame.wall_time)
            yield part(await loop.run_in_executor(None, annotated_jpeg, frame, cfg))
        await asyncio.sleep(poll_s)


def _scaled(rec: FaceRecord, s: float) -> FaceRecord:
    if s == 1.0:
        return rec
    pose = np.array(rec.pose, np.float32)
    pose[3:5] *= s
    return replace(rec, box=np.asarray(rec.box, np.float32) * s, pose=pose)


def _encode(image: np.ndarray, quality: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=quality)
    return out.getvalue()
