"""Dynamic batching of model requests from many streams, live streams first.

A shared replica (detector or regressor) receives one call per stream and frame batch;
run one by one, a CPU or GPU replica wastes most of its throughput on small inputs. A
:class:`Batcher` merges the calls waiting at the replica into batches of up to
``max_batch_size`` items (crops, frames), waiting at most ``max_wait_s`` after the first of
them arrived for a batch to fill — the rule of Ray Serve's ``@serve.batch``, counted in
items rather than calls —
and runs the model on the merged input in a worker thread, so the event loop keeps
accepting requests while a batch computes. One batch runs at a time: on one device,
concurrent batches only contend.

Which waiting requests go first is the ``priority`` policy (``model.priority``):

- ``live_first``: a live stream's requests before any file's. A camera cannot wait (its
  frames go stale and are dropped); a file can (backpressure slows its decoder, it loses
  nothing), so a file must never starve a camera. Going first in the queue is not
  enough: between a camera's frames the replica is idle and a file fills the gaps, and
  its session's decoding and tracking take the CPU the cameras' sessions need. So a live
  request that says its stream is *behind* (frames piling up at its source) holds file
  requests back for ``hold_s``, apart from one file batch every ``trickle_s`` so a file
  still finishes; a held file's pipeline stops at its next model call, down to its
  decoder, and the CPU goes to the cameras;
- ``fifo``: in order of arrival, whoever sent them.

What an "item" is and how inputs merge and results split are injected (``join``,
``split``, ``size``), so the same rule serves crops and frames.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Generic, TypeVar

from streamer.config import Priority
from streamer.pipeline.counters import BATCH_BUCKETS, LATENCY_BUCKETS_S, Histogram

In = TypeVar("In")
Out = TypeVar("Out")


@dataclasses.dataclass
class _Request:
    items: Any
    size: int
    live: bool
    future: asyncio.Future
    arrived: float


class Batcher(Generic[In, Out]):
    """Merges requests arriving on one event loop into batches for ``run``.

    ``join(inputs) -> input`` merges the inputs of a batch's requests, ``split(output,
    start, stop)`` is one request's part of the result (its items ``start:stop``), and
    ``size(input)`` counts items. Requests are never split: their results must come back
    together anyway, so one larger than ``max_batch_size`` runs as a batch of its own.
    """

    def __init__(self, run: Callable[[In], Out], max_batch_size: int, max_wait_s: float, *,
                 join: Callable[[list[In]], In], split: Callable[[Out, int, int], Out],
                 size: Callable[[In], int] = len,  # type: ignore[assignment]  # len: a batch is Sized
                 priority: Priority = Priority.LIVE_FIRST, name: str = "batch", hold_s: float = 0.5,
                 trickle_s: float = 1.0):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        try:
            self.priority = Priority(priority)   # a plain word from a caller: the member it names
        except ValueError:
            raise ValueError(f"priority must be one of {', '.join(Priority)}, got {priority!r}") from None
        self._run, self._join, self._split, self._size = run, join, split, size
        self.max_batch_size = int(max_batch_size)
        self.max_wait_s = max(0.0, float(max_wait_s))
        self.hold_s, self.trickle_s = hold_s, trickle_s
        self._files_held_until = 0.0      # monotonic: a live stream behind holds files till then
        self._last_file_batch = 0.0
        self._live: deque[_Request] = deque()
        self._files: deque[_Request] = deque()
        self._pending_items = 0
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._task: asyncio.Task | None = None
        self.stats = {"requests": 0, "items": 0, "batches": 0, "largest_batch": 0, "live_requests": 0}
        self.batch_sizes = Histogram(BATCH_BUCKETS)
        self.latency = Histogram(LATENCY_BUCKETS_S)   # request arrival to result

    def snapshot(self) -> dict:
        """Counters, the items waiting now (queue depth) against the most one batch takes,
        and the histograms, as plain data."""
        return {**self.stats, "queued": self._pending_items, "max_batch_size": self.max_batch_size,
                "batch_size": self.batch_sizes.snapshot(), "latency_s": self.latency.snapshot()}

    async def submit(self, items: In, live: bool = False, behind: bool = False) -> Out:
        """The result for ``items``, once the batch they joined has run; ``live``: they
        come from a live stream, ``behind``: one whose frames pile up at its source."""
        loop = asyncio.get_running_loop()
        if live and behind and self.priority == Priority.LIVE_FIRST:
            self._files_held_until = time.monotonic() + self.hold_s
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._serve())
        request = _Request(items, self._size(items), live, loop.create_future(), time.monotonic())
        (self._live if live else self._files).append(request)
        self._pending_items += request.size
        self._arrived.set()
        return await request.future

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while self._queue() is None:   # nothing waiting, or only files that are held
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), self._until_files_go())
                except asyncio.TimeoutError:
                    pass
            deadline = self._fill_deadline()
            while self._pending_items < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = self._take()
            try:
                out = await loop.run_in_executor(self._executor, self._run, self._join([r.items for r in batch]))
            except Exception as e:  # every caller of the batch gets the failure
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(e)
                continue
            self._count(batch)
            start, now = 0, time.monotonic()
            for r in batch:
                self.latency.observe(now - r.arrived)
                if not r.future.done():  # a cancelled caller simply gets nothing
                    r.future.set_result(self._split(out, start, start + r.size))
                start += r.size

    def _fill_deadline(self) -> float:
        """Until when (monotonic) the next batch may wait to fill: ``max_wait_s`` after its
        oldest request arrived. A request that came while a batch was computing has waited
        that long already; counting the wait from the end of that batch would hold it (and
        leave the replica idle) for another ``max_wait_s`` each time the replica is busy."""
        queue = self._queue()
        assert queue is not None  # called while requests wait
        return queue[0].arrived + self.max_wait_s

    def _files_go_at(self) -> float:
        """When file requests may go (monotonic): the hold's end, or the next trickle."""
        return min(self._files_held_until, self._last_file_batch + self.trickle_s)

    def _until_files_go(self) -> float | None:
        """Seconds until held file requests may go (None: none wait, wait for arrivals)."""
        if not self._files:
            return None
        return max(0.001, self._files_go_at() - time.monotonic())

    def _queue(self) -> deque[_Request] | None:
        """The queue whose first request goes next under the priority policy."""
        live = self._live
        files = self._files if self._files and time.monotonic() >= self._files_go_at() else None
        if not live or not files:
            return live or files or None
        if self.priority == Priority.LIVE_FIRST:
            return live
        return live if live[0].arrived <= files[0].arrived else files

    def _take(self) -> list[_Request]:
        """The requests that go next and fit in one batch (always at least one)."""
        queue = self._queue()
        assert queue is not None  # called while requests wait
        first = queue.popleft()
        batch, size = [first], first.size
        while (queue := self._queue()) is not None and size + queue[0].size <= self.max_batch_size:
            size += queue[0].size
            batch.append(queue.popleft())
        self._pending_items -= size
        if any(not r.live for r in batch):
            self._last_file_batch = time.monotonic()
        return batch

    def _count(self, batch: list[_Request]) -> None:
        items = sum(r.size for r in batch)
        self.stats["requests"] += len(batch)
        self.stats["live_requests"] += sum(r.live for r in batch)
        self.stats["items"] += items
        self.stats["batches"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], items)
        self.batch_sizes.observe(items)
