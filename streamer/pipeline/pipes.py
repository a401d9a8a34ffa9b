"""What passes between the stages of a :class:`~streamer.pipeline.session.StreamSession`: the
bounded pipes that give it backpressure, and one typed item per pipe (read → track:
:class:`Detecting`; track → publish: :class:`Regressing`).

A model's answer travels as an ``Awaitable`` of its value (a Ray ``ObjectRef`` in the
session, anything awaitable in a test), so this module names what arrives without
importing Ray.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from streamer.sources.frames import Frame
from streamer.tracking.follow import FramePlan
from streamer.tracking.tracker import Track
from workers.prediction import Detections, Prediction

Item = TypeVar("Item")


class Pipe(Generic[Item]):
    """FIFO between two stages with a fixed number of slots.

    A producer reserves a slot *before* it starts the work it will put (decoding,
    a model call) and the consumer releases it once done with the item, so a slot
    bounds work in flight — not only queue length, which would let one more item be
    produced and one more be consumed beyond the bound. ``get`` returns None after
    ``close``.
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"a pipe needs at least one slot, got {slots}")
        self._slots = asyncio.Semaphore(slots)
        self._items: asyncio.Queue[Item | None] = asyncio.Queue()

    async def reserve(self) -> None:
        await self._slots.acquire()

    def put(self, item: Item) -> None:
        self._items.put_nowait(item)

    def close(self) -> None:
        self._items.put_nowait(None)

    async def get(self) -> Item | None:
        return await self._items.get()

    def release(self) -> None:
        self._slots.release()


class Unseen:
    """Frames sent to the regressor whose output the follower has not seen yet: the track
    stage waits on it before placing a frame from that output."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = asyncio.Event()

    def sent(self, frames: int) -> None:
        self._count += frames

    def seen(self, frames: int) -> None:
        self._count -= frames
        self._changed.set()

    async def at_most(self, frames: int) -> None:
        while self._count > frames:
            self._changed.clear()
            await self._changed.wait()


@dataclass
class FrameWork:
    """What the later stages (the follower's feedback, the person stage, the record builder)
    need of one frame once its crops are cut (not the image)."""

    index: int
    pts: float
    captured: float          # wall time its data reached the source (Frame.captured; 0: not known)
    tracks: list[Track]
    affines: np.ndarray      # (faces, 2, 3) crop -> image
    ended_ids: list[int]     # tracks the tracker ended at this frame
    cut: bool = False        # a hard shot cut starts at this frame (it ended every track)
    sampled: list[int] = field(default_factory=list)   # tracks (positions) whose identity patch was cut
    whole: list[bool] = field(default_factory=list)    # per sampled track: its box lies inside the frame
    read_at: float = 0.0      # wall times it was taken from the source and tracked (counters.Stage)
    tracked_at: float = 0.0


@dataclass
class Detecting:
    """The read stage's item: decoded frames, each one's plan, and the detector's answer
    for the detected ones (one per region of each one's ``plan.regions``, in order)."""

    frames: list[Frame]
    plans: list[FramePlan]   # one per frame
    detections: Awaitable[list[Detections]] | None   # None: no frame is detected
    read_at: float = 0.0     # wall time the frames were taken from the source


@dataclass
class Regressing:
    """The track stage's item: frames whose crops went to the regressor as one call, and
    the identity patches cut from them (rows in ``FrameWork.sampled`` order)."""

    work: list[FrameWork]
    prediction: Awaitable[Prediction] | None          # None when the frames hold no face
    identities: Awaitable[np.ndarray] | None = None   # (patches, 128) embeddings; None: none cut


@dataclass(frozen=True)
class Sample:
    """One identity sample of a track as the publish stage hands it to the person book: its
    frame, the tracker's id and whether the face was fit to link or split anything."""

    frame_index: int
    pts: float
    track_id: int
    usable: bool
