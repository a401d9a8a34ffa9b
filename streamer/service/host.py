"""``StreamHost``: one worker process running many streams, each an asyncio task.

A stream session imports no model code (no torch: :mod:`workers.prediction`), so what
a stream costs is its queues, decoder and sinks, not a process: a host runs up to
``service.streams_per_host`` :class:`~streamer.pipeline.session.StreamSession` objects on its
event loop. Each one's blocking work runs in its own threads as it does in a session
actor (decoding in a decode thread, sink writes in a sink thread), its backpressure is
its own (``session.max_inflight_batches``), and the models stay in the shared replicas.

Crash isolation is what it was:

* A stream's failure (a corrupt video, a sink error, any exception in its task) ends
  that stream's ``run`` call with its ``failed`` event and its error, and nothing else:
  every stream is its own actor call, and Ray answers each call on its own.
* A crash of the host process (killed, out of memory, a native fault) is seen by Ray,
  which restarts the host (``session.max_restarts``) and sends every ``run`` call that
  was in flight again; each stream resumes after the frame its sinks have committed
  (:func:`streamer.pipeline.session._resume_point`), as a restarted session actor does. The
  manager's watch on each call sees only the final result, or that the stream was lost
  once the restarts are spent. A process-level fault caused by one stream does take its
  host's other streams through that restart (they lose nothing); a host counts its
  restarts for all its streams together.

:class:`HostPool` is the manager's side: it places streams on hosts, gives each
placement a :class:`HostedStream` handle, and ends a host once its last stream is gone.
A host's sessions share one interpreter, whose Python runs on one core at a time: four
720p cameras in one host processed 0.65x of real time on a 2-core machine, spread over
two hosts 0.82x (alternated runs, docs/performance.md). So the first ``service.hosts``
streams (auto: one per CPU of the Ray cluster) each start a host, and later ones go to
the least busy host with room (up to ``streams_per_host``; a new host when none has): the
streams' Python work is spread over the cores, and beyond that many hosts streams share
processes, each adding a stream's memory, not a process's.
``streams_per_host: 1`` is one process per stream, as before. It also
gives each stream its detection slot (``detector.phase`` auto): the one of
``every_frames`` least used by the streams running, on any host (they share the
detector replicas), so that cameras in step do not detect on the same frame
(:func:`least_used_slot`; :mod:`streamer.tracking.schedule` keeps to it).
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

import ray

from streamer.config import Config, DetectionPhasing
from streamer.pipeline.replicas import Replicas
from streamer.pipeline.session import SinkFactory, StreamSession
from streamer.pipeline.status import StreamProgress, StreamSummary


def _rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def least_used_slot(used: list[int], every_frames: int) -> int:
    """The slot for one more stream, given the slots of those running: one used by the
    fewest streams, of those the farthest (around the period) from the others', so that
    a run's neighbours on the shared detector are as far away as they can be; the lowest
    on a tie. Four streams at every 10: 0, 5, 2, 7."""
    if every_frames < 1:
        raise ValueError(f"every_frames must be >= 1, got {every_frames}")
    counts = [0] * every_frames
    for slot in used:
        counts[slot % every_frames] += 1
    fewest = min(counts)

    def gap(slot: int) -> int:   # to the nearest slot in use more often than the fewest
        taken = [s for s in range(every_frames) if counts[s] > fewest]
        return min((min(abs(slot - s), every_frames - abs(slot - s)) for s in taken), default=every_frames)

    candidates = [s for s in range(every_frames) if counts[s] == fewest]
    return max(candidates, key=lambda s: (gap(s), -s))


class StreamHost:
    """Runs streams as tasks of one async Ray actor; every method takes the stream id."""

    def __init__(self) -> None:
        self._sessions: dict[str, StreamSession] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._stop_early: set[str] = set()   # stop() came before run() had started
        self._ran = 0

    async def run(self, stream_id: str, url: str, cfg: Config, replicas: Replicas,
                  sinks: list[SinkFactory], options: dict[str, Any]) -> StreamSummary:
        """Run one stream to its end; returns its summary, or raises its error (after its
        ``failed`` event), exactly as ``StreamSession.run`` does in an actor of its own."""
        if stream_id in self._sessions:
            raise RuntimeError(f"stream {stream_id!r} is running on this host already")
        session = StreamSession(stream_id, url, cfg, replicas, sinks, **options)
        self._sessions[stream_id] = session
        task = asyncio.current_task()
        if task is not None:
            self._tasks[stream_id] = task
        self._ran += 1
        try:
            if stream_id in self._stop_early:
                self._stop_early.discard(stream_id)
                await session.stop()
            return await session.run()
        finally:
            self._sessions.pop(stream_id, None)
            self._tasks.pop(stream_id, None)
            session.close()

    async def progress(self, stream_id: str) -> StreamProgress | None:
        """The stream's ``progress()``, or None while it is not (or no longer) running here."""
        session = self._sessions.get(stream_id)
        return None if session is None else await session.progress()

    async def stop(self, stream_id: str) -> None:
        """Ask the stream to finish early (see ``StreamSession.stop``); a stop that
        arrives before its ``run`` is kept for it."""
        session = self._sessions.get(stream_id)
        if session is None:
            self._stop_early.add(stream_id)
        else:
            await session.stop()

    async def abort(self, stream_id: str) -> bool:
        """Cancel the stream's task (the manager's last resort when a stop times out,
        where a stream alone in its process would be killed): it emits ``failed`` and
        closes its sinks, the host's other streams carry on."""
        task = self._tasks.get(stream_id)
        if task is None:
            return False
        task.cancel()
        return True

    def info(self) -> dict:
        """The process (pid, resident bytes, node), the streams it runs now and their
        detection slots."""
        return {"pid": os.getpid(), "rss_bytes": _rss_bytes(), "streams": sorted(self._sessions),
                "streams_run": self._ran, "node_id": ray.get_runtime_context().get_node_id(),
                "detection_slots": {sid: s.detection_slot for sid, s in self._sessions.items()}}


def _cluster_cpus() -> int:
    """The Ray cluster's CPUs (at least 1): how many hosts' interpreters can run at once."""
    return max(1, int(ray.cluster_resources().get("CPU", 1))) if ray.is_initialized() else 1


def launch_host(cfg: Config) -> Any:
    """Start a StreamHost actor. Like a session actor, it reserves no CPU (its streams
    wait on the replicas, which hold the CPUs) and is restarted after a crash, Ray sending
    its pending ``run`` calls again (each stream resumes)."""
    custom = {"resources": dict(cfg.session.resources)} if cfg.session.resources else {}
    actor = ray.remote(StreamHost).options(num_cpus=0, max_restarts=cfg.session.max_restarts,
                                           max_task_retries=cfg.session.max_restarts,
                                           max_concurrency=1000, **custom)
    return actor.remote()


@dataclass
class _Host:
    handle: Any
    streams: set[str] = field(default_factory=set)
    lost: bool = False      # its restarts are spent: it takes no new stream


class HostedStream:
    """One stream placed on a host: the calls the manager makes of a session actor."""

    def __init__(self, pool: "HostPool", host: _Host, stream_id: str, slot: int | None = None):
        self._pool, self._host, self.stream_id = pool, host, stream_id
        self.slot = slot   # its detection slot (None: detector.phase off)

    @property
    def host(self) -> Any:
        return self._host.handle

    def run(self, url: str, cfg: Config, replicas: Replicas, sinks: list[SinkFactory], **options: Any) -> Any:
        """Start the stream's run (``options``: the session's; its detection slot is added)."""
        if self.slot is not None:
            options = {**options, "detection_slot": self.slot}
        return self._host.handle.run.remote(self.stream_id, url, cfg, replicas, sinks, options)

    def progress(self) -> Any:
        return self._host.handle.progress.remote(self.stream_id)

    def stop(self) -> Any:
        return self._host.handle.stop.remote(self.stream_id)

    def release(self, abort: bool = False) -> None:
        """The stream is over here (``abort``: it did not stop in time, end it)."""
        self._pool.release(self, abort)

    def host_lost(self) -> None:
        """Its run was lost with the host (restarts spent): place nothing more there."""
        self._host.lost = True


class HostPool:
    """The manager's hosts: where each new stream goes and when a host ends."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.per_host = cfg.service.streams_per_host
        self.spread = cfg.service.hosts if cfg.service.hosts is not None else _cluster_cpus()
        self.hosts: list[_Host] = []
        self.slots: dict[str, int] = {}   # stream id -> detection slot, while placed

    def place(self, stream_id: str) -> HostedStream:
        """A slot for ``stream_id``: a new host while fewer than ``spread`` take streams,
        then the host with the fewest streams that has room (the older on a tie), else a new one."""
        usable = [h for h in self.hosts if not h.lost]
        room = [h for h in usable if len(h.streams) < self.per_host]
        if room and len(usable) >= self.spread:
            host = min(room, key=lambda h: len(h.streams))
        else:
            host = _Host(launch_host(self.cfg))
            self.hosts.append(host)
        host.streams.add(stream_id)
        return HostedStream(self, host, stream_id, self._slot(stream_id))

    def _slot(self, stream_id: str) -> int | None:
        """A detection slot for a new stream: the least used by those placed."""
        if self.cfg.detector.phase == DetectionPhasing.OFF:
            return None
        used = [slot for sid, slot in self.slots.items() if sid != stream_id]
        self.slots[stream_id] = least_used_slot(used, self.cfg.detector.every_frames)
        return self.slots[stream_id]

    def release(self, hosted: HostedStream, abort: bool = False) -> None:
        host = hosted._host
        if hosted.stream_id not in host.streams:
            return
        host.streams.discard(hosted.stream_id)
        self.slots.pop(hosted.stream_id, None)
        if not host.streams:   # its last stream: the process goes, as a session actor did
            self.hosts.remove(host)
            ray.kill(host.handle)
        elif abort:            # others still run there: end only this one
            host.handle.abort.remote(hosted.stream_id)

    def stop(self) -> None:
        for host in self.hosts:
            ray.kill(host.handle)
        self.hosts = []
        self.slots = {}

    def snapshot(self) -> list[dict]:
        """Each host's streams (the manager's view; ``StreamHost.info`` has the process's)."""
        return [{"streams": sorted(h.streams)} for h in self.hosts]
