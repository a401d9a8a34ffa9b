"""The model replicas every stream session shares, as Ray actors.

One detector and one regressor per replica process, loaded once, used by all sessions:
model weights are not duplicated per stream, and crops from many streams are batched
together, which is where a GPU (or a vectorised CPU kernel) earns its throughput.

* :class:`DetectorReplica` takes a batch of frames per call (a session already sends its
  frames in detector-sized batches), so it needs no batching of its own.
* :class:`RegressorReplica` is an async actor: each call brings one session's crops of
  one frame batch, and :class:`CropBatcher` merges the calls waiting at the replica into
  batches of up to ``max_batch_size`` crops, waiting at most ``max_wait_ms`` for a batch
  to fill — the rule of Ray Serve's ``@serve.batch``, counted in crops rather than
  calls, so that this class can become a Serve deployment without changing its callers.
* :class:`Replicas` is the picklable set of handles a session receives; it spreads calls
  over the replicas round-robin and is the seam where a Serve handle can replace actors.

Crops travel as uint8 (four times smaller than float tensors) and are normalised in the
replica with the checkpoint's own crop rule.
"""
from __future__ import annotations

import asyncio
import dataclasses
import itertools
import secrets
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np
import ray
import torch

from streamer.config import Config, DetectorConfig
from streamer.ray_errors import root_cause
from streamer.stats import BATCH_BUCKETS, LATENCY_BUCKETS_S, Histogram
from workers.crops import CropRule, to_tensor
from workers.detector import Detections, FaceDetector
from workers.regressor import Prediction, Regressor


def slice_prediction(pred: Prediction, start: int, stop: int) -> Prediction:
    """Rows ``start:stop`` of every array of a batched Prediction."""
    return Prediction(**{f.name: getattr(pred, f.name)[start:stop] for f in dataclasses.fields(pred)})


@dataclasses.dataclass
class _Request:
    crops: np.ndarray
    future: asyncio.Future
    arrived: float


class CropBatcher:
    """Dynamic batching of crop requests arriving from many callers on one event loop.

    A batch starts when a request is waiting; it closes when it holds ``max_batch_size``
    crops or ``max_wait_s`` has passed, then runs ``run`` on the concatenated crops in a
    worker thread (the event loop keeps accepting requests meanwhile, so the next batch
    fills while this one computes). Requests are never split: their results must come
    back together anyway, so one larger than ``max_batch_size`` runs as a batch of its own.
    One batch runs at a time: on one device, concurrent batches only contend.
    """

    def __init__(self, run: Callable[[np.ndarray], Prediction], max_batch_size: int, max_wait_s: float):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self._run = run
        self.max_batch_size = int(max_batch_size)
        self.max_wait_s = max(0.0, float(max_wait_s))
        self._pending: deque[_Request] = deque()
        self._pending_crops = 0
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crop-batch")
        self._task: asyncio.Task | None = None
        self.stats = {"requests": 0, "crops": 0, "batches": 0, "largest_batch": 0}
        self.batch_sizes = Histogram(BATCH_BUCKETS)
        self.latency = Histogram(LATENCY_BUCKETS_S)   # request arrival to result

    def snapshot(self) -> dict:
        """Counters, the crops waiting now (queue depth) and the histograms, as plain data."""
        return {**self.stats, "queued_crops": self._pending_crops,
                "batch_size": self.batch_sizes.snapshot(), "latency_s": self.latency.snapshot()}

    async def submit(self, crops: np.ndarray) -> Prediction:
        """Predictions for ``crops`` (N, S, S, 3), once the batch they joined has run."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._serve())
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(crops, future, time.monotonic()))
        self._pending_crops += len(crops)
        self._arrived.set()
        return await future

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = loop.time() + self.max_wait_s
            while self._pending_crops < self.max_batch_size:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = self._take()
            crops = np.concatenate([r.crops for r in batch])
            try:
                pred = await loop.run_in_executor(self._executor, self._run, crops)
            except Exception as e:  # every caller of the batch gets the failure
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(e)
                continue
            self._count(batch, len(crops))
            start, now = 0, time.monotonic()
            for r in batch:
                self.latency.observe(now - r.arrived)
                stop = start + len(r.crops)
                if not r.future.done():  # a cancelled caller simply gets nothing
                    r.future.set_result(slice_prediction(pred, start, stop))
                start = stop

    def _take(self) -> list[_Request]:
        """The oldest requests that fit in one batch (always at least one)."""
        batch = [self._pending.popleft()]
        size = len(batch[0].crops)
        while self._pending and size + len(self._pending[0].crops) <= self.max_batch_size:
            size += len(self._pending[0].crops)
            batch.append(self._pending.popleft())
        self._pending_crops -= size
        return batch

    def _count(self, batch: list[_Request], crops: int) -> None:
        self.stats["requests"] += len(batch)
        self.stats["crops"] += crops
        self.stats["batches"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], crops)
        self.batch_sizes.observe(crops)


class RegressorReplica:
    """Expression / pose / shape regressor shared by all sessions (run as an async actor)."""

    def __init__(self, checkpoint_path: str, device: str, max_batch_size: int, max_wait_ms: float):
        torch.set_num_threads(1)  # one replica, one core: the other cores decode and detect
        self._regressor = Regressor.load(checkpoint_path, device)
        self._rule = CropRule.from_meta(self._regressor.meta)
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_ms / 1000.0
        self._batcher: CropBatcher | None = None  # needs the actor's event loop

    def info(self) -> dict:
        """What a session needs to use this model: its version string and metadata."""
        return {"version": self._regressor.version, "meta": self._regressor.meta,
                "device": str(self._regressor.device), "node_id": ray.get_runtime_context().get_node_id()}

    async def predict(self, crops: np.ndarray) -> Prediction:
        """Predictions for uint8 crops (N, S, S, 3) cut with this checkpoint's crop rule."""
        if self._batcher is None:
            self._batcher = CropBatcher(self._run, self._max_batch_size, self._max_wait_s)
        return await self._batcher.submit(crops)

    def stats(self) -> dict:
        """The batcher's snapshot (empty before the first call)."""
        return self._batcher.snapshot() if self._batcher else {}

    def _run(self, crops: np.ndarray) -> Prediction:
        return self._regressor(to_tensor(crops, self._rule))


class DetectorReplica:
    """RetinaFace shared by all sessions; one call detects faces in a batch of frames."""

    def __init__(self, cfg: DetectorConfig):
        torch.set_num_threads(1)
        self._detector = FaceDetector(cfg, threads=1)
        self._calls = self._frames = 0
        self._latency = Histogram(LATENCY_BUCKETS_S)

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        t0 = time.monotonic()
        found = self._detector.detect(images)
        self._calls += 1
        self._frames += len(images)
        self._latency.observe(time.monotonic() - t0)
        return found

    def stats(self) -> dict:
        return {"calls": self._calls, "frames": self._frames, "latency_s": self._latency.snapshot(),
                "node_id": ray.get_runtime_context().get_node_id()}


_NAMESPACE = "facestream"


class Replicas:
    """Handles to the running replicas; picklable, so sessions receive it as an argument.

    Methods return Ray ObjectRefs (awaitable in an async actor, or ``ray.get``-able).
    Replicas made by :meth:`start` are named actors and travel by name: an actor handle
    among a restartable actor's constructor arguments would keep those arguments in the
    object store (Ray warns that a restart could then fail), a name is a plain string
    that the receiving process turns back into a handle.
    """

    def __init__(self, detectors: list[Any], regressors: list[Any], names: dict | None = None):
        if not detectors or not regressors:
            raise ValueError("need at least one detector and one regressor replica")
        self.detectors = list(detectors)
        self.regressors = list(regressors)
        self._names = names
        self._next_detector = itertools.cycle(range(len(self.detectors)))
        self._next_regressor = itertools.cycle(range(len(self.regressors)))

    @classmethod
    def start(cls, cfg: Config, checkpoint_path: str) -> "Replicas":
        """Create ``cfg.model`` many replicas of each model (they load asynchronously)."""
        m = cfg.model
        # A replica that dies is restarted and the calls it held are sent again: model
        # calls have no side effects, so a retry is safe and a file loses no frame.
        common = {"max_restarts": m.max_restarts, "max_task_retries": m.max_restarts,
                  "num_cpus": m.num_cpus_per_replica, "namespace": _NAMESPACE,
                  **({"resources": dict(m.resources)} if m.resources else {})}
        detector, regressor = ray.remote(DetectorReplica), ray.remote(RegressorReplica)
        tag = secrets.token_hex(4)
        names = {"detectors": [f"facestream-detector-{tag}-{i}" for i in range(m.detector_replicas)],
                 "regressors": [f"facestream-regressor-{tag}-{i}" for i in range(m.regressor_replicas)]}
        return cls(
            [detector.options(name=n, **common).remote(cfg.detector) for n in names["detectors"]],
            [regressor.options(name=n, num_gpus=m.num_gpus_per_replica, **common).remote(
                str(checkpoint_path), m.device, m.max_batch_size, m.max_wait_ms) for n in names["regressors"]],
            names,
        )

    def info(self) -> ray.ObjectRef:
        """The regressor's info (all replicas load the same checkpoint)."""
        return self.regressors[0].info.remote()

    def ready(self) -> None:
        """Block until every replica has loaded; raises the error that stopped one loading."""
        try:
            ray.get([r.info.remote() for r in self.regressors]
                    + [d.__ray_ready__.remote() for d in self.detectors])
        except ray.exceptions.RayActorError as e:
            cause = root_cause(e)   # an actor whose __init__ raised: that error
            if cause is e or not isinstance(cause, Exception):
                raise
            raise cause from None

    def detect(self, images: list[np.ndarray]) -> ray.ObjectRef:
        return self.detectors[next(self._next_detector)].detect.remote(images)

    def predict(self, crops: np.ndarray) -> ray.ObjectRef:
        return self.regressors[next(self._next_regressor)].predict.remote(crops)

    def stop(self) -> None:
        for handle in self.detectors + self.regressors:
            ray.kill(handle)

    def __getstate__(self) -> dict:
        if self._names is not None:
            return {"names": self._names}
        return {"detectors": self.detectors, "regressors": self.regressors}

    def __setstate__(self, state: dict) -> None:
        names = state.get("names")
        if names is None:
            self.__init__(state["detectors"], state["regressors"])
            return
        handles = {k: [ray.get_actor(n, namespace=_NAMESPACE) for n in v] for k, v in names.items()}
        self.__init__(handles["detectors"], handles["regressors"], names)