"""ViewTap against a real Redis: silent until the stream is watched, then a small JPEG of a
frame and that frame's records under the frame key, which the live view reads and draws."""
from __future__ import annotations

import io
from concurrent.futures import Executor, Future

import numpy as np
import redis
from PIL import Image

from streamer.config import load_config
from streamer.data.view_frame import decode_view_frame, frame_key, watch_key
from streamer.pipeline.view_tap import ViewTap
from streamer.sources.frames import Frame


class _Inline(Executor):
    """Runs each task at once, so that the test sees its effect on return."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def _frame(index: int) -> Frame:
    image = np.zeros((480, 960, 3), np.uint8)
    image[:, : 480] = (200, 30, 30)
    return Frame(index=index, pts=index / 25, image=image)


def test_frames_go_to_redis_only_while_watched_with_their_records(redis_url, make_records):
    from streamer.view.frames import annotated_jpeg

    cfg = load_config(overrides={"view": {"max_side": 320}})
    client = redis.Redis.from_url(redis_url)
    tap = ViewTap(cfg, "cam1", redis_url, _Inline())
    records = make_records(frames=3, faces=2)
    for r in records:
        r.box = np.array([100, 100, 300, 300], np.float32)
        r.pose[3:5] = (200, 200)
    tap.offer(_frame(0))
    tap.published([0], [r for r in records if r.frame_index == 0])
    assert not tap.watched and not client.exists(frame_key("facestream", "cam1"))   # nobody watches

    client.set(watch_key("facestream", "cam1"), b"1", px=5000)
    tap._next_check = 0.0          # the next offer looks again (it does so twice a second)
    tap.offer(_frame(1))           # looks, finds it watched, keeps the frame (one is due)
    assert tap.watched
    tap.offer(_frame(2))           # not kept: the next is due 1 / view.fps later
    tap.published([1, 2], [r for r in records if r.frame_index in (1, 2)])
    frame = decode_view_frame(client.hgetall(frame_key("facestream", "cam1")))
    assert frame is not None and frame.frame_index == 1 and frame.pts == 1 / 25
    assert frame.scale == 320 / 960 and [r.track_id for r in frame.records] == [1, 2]
    assert [r.frame_index for r in frame.records] == [1, 1]
    np.testing.assert_array_equal(frame.records[0].expression, records[2].expression)
    image = np.array(Image.open(io.BytesIO(frame.jpeg)))
    assert image.shape == (160, 320, 3) and image[80, 40, 0] > 150 and image[80, 280, 0] < 40
    assert 0 < client.pttl(frame_key("facestream", "cam1")) <= 5000    # gone soon after the last viewer

    drawn = np.array(Image.open(io.BytesIO(annotated_jpeg(frame, cfg))))
    # the box, scaled to the JPEG (100..300 source px -> 33..100), is drawn in a track colour
    assert drawn.shape == image.shape and np.abs(drawn.astype(int) - image.astype(int)).sum() > 0
    edge = drawn[34:99, 33]
    assert (np.abs(edge.astype(int) - image[34:99, 33].astype(int)).sum(axis=1) > 60).mean() > 0.8

    off = ViewTap(load_config(overrides={"view": {"port": 0}}), "cam1", redis_url, _Inline())
    off.offer(_frame(3))
    assert not off.watched          # no live view served: not even the watch key is read
