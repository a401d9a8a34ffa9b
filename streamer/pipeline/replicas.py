"""The model replicas every stream session shares, as Ray actors.

One detector and one regressor per replica process, loaded once, used by all sessions:
model weights are not duplicated per stream, and crops from many streams are batched
together, which is where a GPU (or a vectorised CPU kernel) earns its throughput.

* :class:`DetectorReplica` and :class:`RegressorReplica` are async actors: each call
  brings one session's frames (to detect) or crops (to regress) of one frame batch, and
  a :class:`~streamer.pipeline.batching.Batcher` merges the calls waiting at the replica into
  batches of up to ``detector.batch_size`` frames or ``model.max_batch_size`` crops,
  waiting at most ``model.max_wait_ms`` for a batch to fill — the rule of Ray Serve's
  ``@serve.batch``, so that these classes can become Serve deployments without changing
  their callers. Live streams' calls go first (``model.priority``).
* :class:`IdentityReplica` embeds the patches sessions cut around faces for person ids
  (dlib's ResNet, :mod:`workers.identity`): a few faces a second per stream (a track's
  birth, then every ``identity.every_s``), so it reserves no CPU and runs niced below the
  others: it takes what they leave.
* :class:`Replicas` is the picklable set of handles a session receives; it spreads calls
  over the replicas round-robin and is the seam where a Serve handle can replace actors.

Crops travel as uint8 (four times smaller than float tensors) and are normalised in the
replica with the checkpoint's own crop rule.
"""
from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Callable

import numpy as np
import ray

from streamer.config import Config, DetectorConfig, MirrorAveraging, Priority
from streamer.pipeline.batching import Batcher
from streamer.pipeline.ray_errors import root_cause
from workers.crops import CropRule
from workers.emotion_labels import EmotionSource
from workers.prediction import Detections, Prediction, slice_prediction
from workers.runtime import Runtime

# torch, onnxruntime and the networks are imported inside the replica classes, not here:
# every process that hosts streams imports this module (to unpickle its Replicas) and
# must not pay ~200 MB for model code it never runs.


def _join_crops(requests: list[tuple[np.ndarray, bool]]) -> tuple[np.ndarray, np.ndarray]:
    """Requests' (crops, mirror-average them?) -> the batch's crops and a flag per crop."""
    return (np.concatenate([crops for crops, _ in requests]),
            np.concatenate([np.full(len(crops), mirror) for crops, mirror in requests]))


def _crop_count(request: tuple[np.ndarray, bool]) -> int:
    return len(request[0])


def crop_batcher(run: Callable[[tuple[np.ndarray, np.ndarray]], Prediction], max_batch_size: int,
                 max_wait_s: float, priority: Priority = Priority.LIVE_FIRST) -> Batcher:
    """A :class:`~streamer.pipeline.batching.Batcher` of crops: each request is (crops (N, S, S, 3),
    whether to mirror-average them); requests are concatenated, each gets its rows of the
    batch's Prediction."""
    return Batcher(run, max_batch_size, max_wait_s, join=_join_crops, split=slice_prediction, size=_crop_count,
                   priority=priority, name="crop-batch")


class Reading(StrEnum):
    """How a stream's crops are read. The replica runs it, and the stream's ``started``
    event (``reading``) and Parquet metadata (``facestream.reading``) write its value,
    since a camera and a file of the same scene read slightly differently."""

    MIRROR_AVERAGE = "mirror_average"   # each crop with its mirror image, averaged
    ONE_VIEW = "one_view"               # each crop once


def reading(policy: MirrorAveraging, averages: bool, live: bool) -> Reading:
    """How a stream's crops are read: averaged with their mirror images when the
    checkpoint asks for it (``averages``) and ``model.mirror_average`` (``policy``) gives
    it to this kind of stream (``live`` or a file), else one view."""
    chosen = policy == MirrorAveraging.ALWAYS or (policy == MirrorAveraging.FILES and not live)
    return Reading.MIRROR_AVERAGE if averages and chosen else Reading.ONE_VIEW


@dataclass(frozen=True)
class ModelInfo:
    """What a session needs to use the regressor replicas' model, as
    :meth:`RegressorReplica.info` answers it (all replicas load the same checkpoint): one
    typed value from the replica's process to the session's and the benchmarks'."""

    version: str                       # the checkpoint's version string (FaceRecord.model_version)
    meta: dict[str, Any]               # the checkpoint's metadata (its crop rule among it)
    presence_threshold: float | None   # the presence probe's; None: the network has no probe
    file_reading: Reading              # how a file's crops are read
    live_reading: Reading              # how a live stream's crops are read
    device: str                        # where the replica runs the model ("cpu", "cuda:0")
    node_id: str                       # the Ray node the replica runs on
    # what reads emotion (the branch, or eta's classifier when the checkpoint has no branch
    # or model.emotion asks for it): the label's default min_prob is that reader's
    emotion: EmotionSource = EmotionSource.BRANCH

    def reading_for(self, live: bool) -> Reading:
        """How the crops of a live stream (or a file) are read."""
        return self.live_reading if live else self.file_reading


def _frames(images: list[list[np.ndarray]]) -> list[np.ndarray]:
    return [image for request in images for image in request]


def _their_frames(found: list[Detections], start: int, stop: int) -> list[Detections]:
    return found[start:stop]


class RegressorReplica:
    """Expression / pose / shape regressor shared by all sessions (run as an async actor)."""

    def __init__(self, checkpoint_path: str, device: str, max_batch_size: int, max_wait_ms: float,
                 priority: Priority = Priority.LIVE_FIRST, mirror_average: MirrorAveraging = MirrorAveraging.FILES,
                 emotion: EmotionSource = EmotionSource.BRANCH, runtime: Runtime = Runtime.AUTO):
        import torch

        from workers.regressor import Regressor

        torch.set_num_threads(1)  # one replica, one core: the other cores decode and detect
        self._regressor = Regressor.load(checkpoint_path, device, emotion, runtime)
        self._rule = CropRule.from_meta(self._regressor.meta)
        self._batching = (max_batch_size, max_wait_ms / 1000.0, priority)
        # model.mirror_average (files, always or never) and the checkpoint decide it per kind of stream
        averages = self._regressor.mirror_averaged
        self._file_reading = reading(mirror_average, averages, live=False)
        self._live_reading = reading(mirror_average, averages, live=True)
        self._batcher: Batcher | None = None  # needs the actor's event loop

    def info(self) -> ModelInfo:
        """What a session needs to use this model (:class:`ModelInfo`)."""
        probe = self._regressor.presence
        return ModelInfo(version=self._regressor.version, meta=self._regressor.meta,
                         presence_threshold=None if probe is None else float(probe.threshold),
                         file_reading=self._file_reading, live_reading=self._live_reading,
                         device=str(self._regressor.device), node_id=ray.get_runtime_context().get_node_id(),
                         emotion=self._regressor.emotion_source)

    async def predict(self, crops: np.ndarray, live: bool = False, behind: bool = False) -> Prediction:
        """Predictions for uint8 crops (N, S, S, 3) cut with this checkpoint's crop rule;
        ``live``: they come from a live stream, ``behind``: one falling behind its camera."""
        if self._batcher is None:
            self._batcher = crop_batcher(self._run, *self._batching)
        mirror = (self._live_reading if live else self._file_reading) == Reading.MIRROR_AVERAGE
        return await self._batcher.submit((crops, mirror), live, behind)

    def stats(self) -> dict:
        """The batcher's snapshot, counted in crops (empty before the first call)."""
        if self._batcher is None:
            return {}
        s = self._batcher.snapshot()
        s["crops"], s["queued_crops"] = s.pop("items"), s.pop("queued")
        return s

    def _run(self, batch: tuple[np.ndarray, np.ndarray]) -> Prediction:
        from workers.crops import to_tensor

        crops, mirror = batch
        return self._regressor(to_tensor(crops, self._rule, self._regressor.device), mirror)


class DetectorReplica:
    """RetinaFace shared by all sessions (run as an async actor): each call brings one
    session's frames; calls waiting together run as one batch of up to ``cfg.batch_size``
    frames (several streams' frames in one network call). The images are the regions the
    session cut (:mod:`streamer.tracking.tiles`: a frame shrunk, a tile of it), of several
    sizes: each size is its own network call. Every face found comes back, however small
    in the image: ``cfg.min_face_px`` counts frame pixels, which only the session knows
    (:meth:`streamer.tracking.tiles.DetectionPlan.merge` applies it)."""

    def __init__(self, cfg: DetectorConfig, max_wait_ms: float = 0.0, priority: Priority = Priority.LIVE_FIRST):
        import torch

        from workers.detector import FaceDetector

        torch.set_num_threads(1)
        self._detector = FaceDetector(replace(cfg, min_face_px=0), threads=1)
        self._batching = (cfg.batch_size, max_wait_ms / 1000.0, priority)
        self._batcher: Batcher | None = None  # needs the actor's event loop

    async def detect(self, images: list[np.ndarray], live: bool = False, behind: bool = False) -> list[Detections]:
        """Faces in each of ``images`` (RGB uint8); ``live``: they come from a live stream,
        ``behind``: one falling behind its camera."""
        if self._batcher is None:
            size, wait_s, priority = self._batching
            self._batcher = Batcher(self._detector.detect, size, wait_s, join=_frames, split=_their_frames,
                                    priority=priority, name="detect-batch")
        return await self._batcher.submit(images, live, behind)

    def stats(self) -> dict:
        """Calls and frames detected, the batcher's histograms (frames per batch, latency)."""
        s = self._batcher.snapshot() if self._batcher else {"requests": 0, "items": 0}
        return {**s, "calls": s["requests"], "frames": s["items"],
                "node_id": ray.get_runtime_context().get_node_id()}


class IdentityReplica:
    """Face-identity embeddings for every session (run as an actor, one call at a time)."""

    def __init__(self, niceness: int = 10) -> None:
        import os

        from workers.identity import FaceIdentity

        # Below the detector, the regressor and the sessions: a live stream never waits for
        # an embedding (streamer.pipeline.person_stage), so identity takes the CPU they leave and a
        # busy machine delays persons rather than dropping camera frames.
        os.nice(niceness)
        self._model = FaceIdentity()
        self._faces = 0

    def embed(self, patches: np.ndarray) -> np.ndarray:
        """(N, 128) embeddings of patches cut with :class:`workers.identity.IdentityCropRule`."""
        self._faces += len(patches)
        return self._model.embed(patches)

    def stats(self) -> dict:
        return {"faces": self._faces, "node_id": ray.get_runtime_context().get_node_id()}


_NAMESPACE = "facestream"


class NoRoomForReplicas(RuntimeError):
    """The Ray cluster has not the CPUs (or GPUs) free that the replicas reserve: Ray would
    keep them pending, and the run would wait for ever without saying why."""


def replica_needs(cfg: Config) -> dict[str, float]:
    """The resources the replicas of ``cfg`` reserve (the identity replica reserves none)."""
    m = cfg.model
    return {"CPU": (m.detector_replicas + m.regressor_replicas) * m.num_cpus_per_replica,
            "GPU": m.regressor_replicas * m.num_gpus_per_replica}


def wait_for_room(cfg: Config, patience_s: float = 15.0, poll_s: float = 0.25) -> None:
    """Return once the cluster has room for the replicas of ``cfg``; raise
    :class:`NoRoomForReplicas` if it has none after ``patience_s`` (actors stopped a moment
    ago give their CPUs back within a second or two, so a short wait is enough)."""
    needs = {k: v for k, v in replica_needs(cfg).items() if v > 0}
    deadline = time.monotonic() + patience_s
    while True:
        free = ray.available_resources()
        short = {k: (free.get(k, 0.0), v) for k, v in needs.items() if free.get(k, 0.0) + 1e-9 < v}
        if not short:
            return
        if time.monotonic() >= deadline:
            total = ray.cluster_resources()
            said = "; ".join(f"{k}: {need:g} needed, {have:g} of {total.get(k, 0.0):g} free"
                             for k, (have, need) in short.items())
            raise NoRoomForReplicas(
                f"the Ray cluster has no room for the model replicas ({said}): free the cluster, "
                "or lower model.num_cpus_per_replica / model.*_replicas in the config")
        time.sleep(poll_s)


class Replicas:
    """Handles to the running replicas; picklable, so sessions receive it as an argument.

    Methods return Ray ObjectRefs (awaitable in an async actor, or ``ray.get``-able).
    Replicas made by :meth:`start` are named actors and travel by name: an actor handle
    among a restartable actor's constructor arguments would keep those arguments in the
    object store (Ray warns that a restart could then fail), a name is a plain string
    that the receiving process turns back into a handle.
    """

    def __init__(self, detectors: list[Any], regressors: list[Any], names: dict | None = None,
                 identities: list[Any] | None = None):
        if not detectors or not regressors:
            raise ValueError("need at least one detector and one regressor replica")
        self.detectors = list(detectors)
        self.regressors = list(regressors)
        self.identities = list(identities or [])   # none: identity is off (person_id null)
        self._names = names
        self._next_detector = itertools.cycle(range(len(self.detectors)))
        self._next_regressor = itertools.cycle(range(len(self.regressors)))
        self._next_identity = itertools.cycle(range(max(1, len(self.identities))))

    @classmethod
    def start(cls, cfg: Config, checkpoint_path: str) -> "Replicas":
        """Create ``cfg.model`` many replicas of each model (they load asynchronously)."""
        m = cfg.model
        wait_for_room(cfg)
        # A replica that dies is restarted and the calls it held are sent again: model
        # calls have no side effects, so a retry is safe and a file loses no frame.
        common = {"max_restarts": m.max_restarts, "max_task_retries": m.max_restarts,
                  "num_cpus": m.num_cpus_per_replica, "namespace": _NAMESPACE,
                  **({"resources": dict(m.resources)} if m.resources else {})}
        detector, regressor = ray.remote(DetectorReplica), ray.remote(RegressorReplica)
        tag = secrets.token_hex(4)
        names = {"detectors": [f"facestream-detector-{tag}-{i}" for i in range(m.detector_replicas)],
                 "regressors": [f"facestream-regressor-{tag}-{i}" for i in range(m.regressor_replicas)],
                 "identities": [f"facestream-identity-{tag}-{i}"
                                for i in range(cfg.identity.replicas if cfg.identity.enabled else 0)]}
        identity = ray.remote(IdentityReplica)
        light = {**common, "num_cpus": 0}   # a few faces a second: it uses what the others leave
        return cls(
            [detector.options(name=n, **common).remote(cfg.detector, m.max_wait_ms, m.priority)
             for n in names["detectors"]],
            [regressor.options(name=n, num_gpus=m.num_gpus_per_replica, **common).remote(
                str(checkpoint_path), m.device, m.max_batch_size, m.max_wait_ms, m.priority, m.mirror_average,
                m.emotion, m.runtime)
             for n in names["regressors"]],
            names,
            [identity.options(name=n, **light).remote() for n in names["identities"]],
        )

    def info(self) -> ray.ObjectRef:
        """The regressor's :class:`ModelInfo` (all replicas load the same checkpoint)."""
        return self.regressors[0].info.remote()

    def ready(self) -> None:
        """Block until every replica has loaded; raises the error that stopped one loading."""
        try:
            ray.get([r.info.remote() for r in self.regressors]
                    + [d.__ray_ready__.remote() for d in self.detectors + self.identities])
        except ray.exceptions.RayActorError as e:
            cause = root_cause(e)   # an actor whose __init__ raised: that error
            if cause is e or not isinstance(cause, Exception):
                raise
            raise cause from None

    def detect(self, images: list[np.ndarray], live: bool = False, behind: bool = False) -> ray.ObjectRef:
        return self.detectors[next(self._next_detector)].detect.remote(images, live, behind)

    def predict(self, crops: np.ndarray, live: bool = False, behind: bool = False) -> ray.ObjectRef:
        return self.regressors[next(self._next_regressor)].predict.remote(crops, live, behind)

    def identify(self, patches: np.ndarray) -> ray.ObjectRef:
        """Identity embeddings of face patches (only when :attr:`identities` is not empty)."""
        return self.identities[next(self._next_identity)].embed.remote(patches)

    def stop(self) -> None:
        for handle in self.detectors + self.regressors + self.identities:
            ray.kill(handle)

    def __getstate__(self) -> dict:
        if self._names is not None:
            return {"names": self._names}
        return {"detectors": self.detectors, "regressors": self.regressors, "identities": self.identities}

    def __setstate__(self, state: dict) -> None:
        names = state.get("names")
        if names is None:
            Replicas.__init__(self, state["detectors"], state["regressors"], identities=state.get("identities"))
            return
        handles = {k: [ray.get_actor(n, namespace=_NAMESPACE) for n in v] for k, v in names.items()}
        Replicas.__init__(self, handles["detectors"], handles["regressors"], names, handles.get("identities"))
