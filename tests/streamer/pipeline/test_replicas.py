"""Model replicas: dynamic crop batching (asyncio, then inside a real Ray actor) and the
detector replica, against the same models run in-process."""
from __future__ import annotations

import asyncio
import pickle
import time

import numpy as np
import pytest
import ray

from streamer.config import DetectorConfig, MirrorAveraging, Priority, SourceConfig
from streamer.pipeline.batching import Batcher
from streamer.pipeline.replicas import (
    DetectorReplica,
    ModelInfo,
    NoRoomForReplicas,
    Reading,
    RegressorReplica,
    Replicas,
    crop_batcher,
    reading,
    replica_needs,
    slice_prediction,
    wait_for_room,
)
from streamer.sources.files import open_source
from workers.crops import CropRule, crop_faces, to_tensor
from workers.detector import FaceDetector
from workers.emotion_labels import EmotionSource
from workers.regressor import Prediction, Regressor


def fake_model(calls: list):
    """A 'model' whose expression[:, 0] echoes each crop's first pixel, recording batch sizes."""
    def run(crops: np.ndarray) -> Prediction:
        calls.append(len(crops))
        n = len(crops)
        expression = np.zeros((n, 29), np.float32)
        expression[:, 0] = crops[:, 0, 0, 0]
        return Prediction(expression=expression, rotation=np.zeros((n, 3, 3)), euler=np.zeros((n, 3)),
                          quaternion=np.zeros((n, 4)), centre=np.zeros((n, 2)), scale=np.zeros(n),
                          shape=np.zeros((n, 99)), landmarks=np.zeros((n, 68, 2)))
    return run


def crop_model(calls: list, mirrored: list | None = None):
    """fake_model as a crop batcher runs it: on (crops, mirror-average flag per crop)."""
    model = fake_model(calls)

    def run(batch: tuple[np.ndarray, np.ndarray]) -> Prediction:
        crops, mirror = batch
        if mirrored is not None:
            mirrored.append(mirror.tolist())
        return model(crops)
    return run


def crops_of(marker: int, n: int) -> np.ndarray:
    return np.full((n, 4, 4, 3), marker, np.uint8)


def request_of(marker: int, n: int, mirror: bool = False) -> tuple[np.ndarray, bool]:
    return crops_of(marker, n), mirror


def submit_all(batcher: Batcher, sizes: list[int]) -> list[Prediction]:
    async def go():
        return await asyncio.gather(*(batcher.submit(request_of(i, n)) for i, n in enumerate(sizes)))
    return asyncio.run(go())


def test_concurrent_requests_share_one_batch_and_get_their_own_rows():
    calls: list[int] = []
    batcher = crop_batcher(crop_model(calls), max_batch_size=32, max_wait_s=0.05)
    results = submit_all(batcher, [3, 4, 5])
    assert calls == [12]
    for i, (pred, n) in enumerate(zip(results, [3, 4, 5])):
        assert len(pred) == n and np.all(pred.expression[:, 0] == i)
    assert batcher.stats == {"requests": 3, "items": 12, "batches": 1, "largest_batch": 12, "live_requests": 0}


def test_each_request_says_whether_its_crops_are_mirror_averaged():
    calls: list[int] = []
    mirrored: list[list[bool]] = []
    batcher = crop_batcher(crop_model(calls, mirrored), max_batch_size=32, max_wait_s=0.05)

    async def go():
        return await asyncio.gather(batcher.submit(request_of(0, 2, True)), batcher.submit(request_of(1, 3, False)))

    results = asyncio.run(go())
    assert calls == [5] and mirrored == [[True, True, False, False, False]]
    assert [len(r) for r in results] == [2, 3]


def test_batches_never_exceed_max_and_keep_arrival_order():
    calls: list[int] = []
    batcher = crop_batcher(crop_model(calls), max_batch_size=8, max_wait_s=0.05)
    results = submit_all(batcher, [4] * 10)
    assert calls == [8] * 5
    assert [int(p.expression[0, 0]) for p in results] == list(range(10))


def test_a_request_larger_than_max_runs_alone_unsplit():
    calls: list[int] = []
    batcher = crop_batcher(crop_model(calls), max_batch_size=32, max_wait_s=0.01)
    results = submit_all(batcher, [40, 2])
    assert calls == [40, 2] and [len(p) for p in results] == [40, 2]


def test_a_lone_request_waits_at_most_max_wait():
    calls: list[int] = []
    batcher = crop_batcher(crop_model(calls), max_batch_size=32, max_wait_s=0.05)
    t0 = time.monotonic()
    submit_all(batcher, [1])
    assert 0.04 <= time.monotonic() - t0 < 1.0 and calls == [1]


def test_a_request_that_waited_through_a_busy_batch_goes_when_that_batch_ends():
    """``max_wait_s`` counts from the request's arrival: one that came while a batch was
    computing, longer ago than ``max_wait_s``, is not held another ``max_wait_s`` after it."""
    calls: list[int] = []
    model = crop_model(calls)
    done: dict[str, float] = {}

    def slow_first(batch):
        if not calls:
            time.sleep(1.0)   # the first batch computes while the second request waits
        return model(batch)

    batcher = crop_batcher(slow_first, max_batch_size=32, max_wait_s=0.5)

    async def go():
        async def one(name: str, marker: int) -> None:
            await batcher.submit(request_of(marker, 1))
            done[name] = time.monotonic()
        first = asyncio.ensure_future(one("first", 0))
        await asyncio.sleep(0.6)   # the first batch is computing now
        await asyncio.gather(first, one("second", 1))

    asyncio.run(go())
    assert calls == [1, 1]
    assert done["second"] - done["first"] < 0.3   # it had waited 0.9 s; held again, it would go 0.5 s later


def test_a_failing_batch_fails_its_callers_and_the_batcher_carries_on():
    calls: list[int] = []
    model = fake_model(calls)

    def flaky(batch):
        if not calls:
            calls.append(-1)
            raise RuntimeError("device lost")
        return model(batch[0])

    batcher = crop_batcher(flaky, max_batch_size=32, max_wait_s=0.02)

    async def go():
        first = await asyncio.gather(batcher.submit(request_of(1, 2)), batcher.submit(request_of(2, 2)),
                                     return_exceptions=True)
        second = await batcher.submit(request_of(3, 2))
        return first, second

    first, second = asyncio.run(go())
    assert all(isinstance(e, RuntimeError) and "device lost" in str(e) for e in first)
    assert np.all(second.expression[:, 0] == 3)


def submit_in_order(batcher: Batcher, requests: list[tuple[int, int, bool]]) -> tuple[list, list]:
    """Submit (marker, crops, live) requests one after another on one event loop while the
    model is busy with a first batch, so they all wait together; returns the order in
    which the model saw the markers and the results."""
    seen: list[int] = []

    def model(batch):
        crops, _ = batch
        seen.extend(int(m) for m in crops[:, 0, 0, 0])
        time.sleep(0.05)   # the first batch runs while the others arrive
        return fake_model([])(crops)

    batcher._run = model

    async def go():
        first = asyncio.ensure_future(batcher.submit(request_of(99, 1)))
        await asyncio.sleep(0.01)   # the first batch is running now
        rest = []
        for marker, n, live in requests:
            rest.append(asyncio.ensure_future(batcher.submit(request_of(marker, n), live=live)))
            await asyncio.sleep(0.001)
        return await asyncio.gather(first, *rest)

    results = asyncio.run(go())
    return seen, results


@pytest.mark.parametrize("priority, want", [
    # live_first: the camera's request, though it came last, goes first into the next
    # batch, filled up by the oldest file request; the other file requests wait
    ("live_first", [99, 9, 0, 1, 2, 3]),
    # fifo: in order of arrival, the camera waits behind the file's queued requests
    ("fifo", [99, 0, 1, 2, 3, 9]),
])
def test_priority_live_first_serves_a_live_stream_before_queued_file_requests(priority, want):
    batcher = crop_batcher(crop_model([]), max_batch_size=2, max_wait_s=0.0, priority=priority)
    seen, results = submit_in_order(batcher, [(0, 1, False), (1, 1, False), (2, 1, False), (3, 1, False),
                                              (9, 1, True)])
    assert seen == want
    assert [int(r.expression[0, 0]) for r in results] == [99, 0, 1, 2, 3, 9]   # each its own rows
    assert batcher.stats["live_requests"] == 1


def run_camera_beside_a_file(priority: str, trickle_s: float) -> dict[int, list[float]]:
    """A camera that is behind sends a request every 20 ms for 0.6 s while a file sends
    requests one after another (as its pipeline does); when the model saw each marker
    (0: the file, 9: the camera), in seconds from the start."""
    seen: dict[int, list[float]] = {0: [], 9: []}
    start = time.monotonic()

    def model(crops):
        for m in crops[:, 0, 0, 0]:
            seen[int(m)].append(time.monotonic() - start)
        time.sleep(0.002)
        return fake_model([])(crops)

    batcher = Batcher(model, 8, 0.0, join=np.concatenate, split=slice_prediction, priority=priority,
                      hold_s=0.2, trickle_s=trickle_s)

    async def camera():
        for _ in range(30):
            await batcher.submit(crops_of(9, 1), live=True, behind=True)
            await asyncio.sleep(0.02)

    async def file():
        while time.monotonic() - start < 1.2:
            await batcher.submit(crops_of(0, 1))

    async def go():
        await asyncio.gather(camera(), file())

    asyncio.run(go())
    return seen


def test_a_camera_behind_holds_files_back_but_a_file_still_trickles():
    seen = run_camera_beside_a_file("live_first", trickle_s=0.25)
    camera_end = seen[9][-1]
    during = [t for t in seen[0] if 0.05 < t < camera_end]
    assert len(seen[9]) == 30
    # held: about one file batch per trickle period while the camera is behind ...
    assert 1 <= len(during) <= camera_end / 0.25 + 2, during
    # ... and at full speed once it has caught up (no behind request for hold_s)
    assert sum(t > camera_end + 0.25 for t in seen[0]) > 20

    fifo = run_camera_beside_a_file("fifo", trickle_s=0.25)   # fifo holds nothing back
    assert sum(0.05 < t < fifo[9][-1] for t in fifo[0]) > 2 * (fifo[9][-1] / 0.25 + 2)


def test_unknown_priority_is_refused():
    with pytest.raises(ValueError, match="live_first, fifo"):
        crop_batcher(crop_model([]), 8, 0.0, priority="camera_first")


def test_a_priority_given_as_its_word_is_the_member_it_names():
    batcher = crop_batcher(crop_model([]), 8, 0.0, priority="fifo")   # a plain word, as YAML has it
    assert batcher.priority is Priority.FIFO and batcher.priority == "fifo"
    assert [str(p) for p in Priority] == ["live_first", "fifo"]


def test_slice_prediction():
    pred = fake_model([])(np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((5, 4, 4, 3), np.uint8))
    part = slice_prediction(pred, 1, 3)
    assert len(part) == 2 and part.expression[:, 0].tolist() == [1, 2] and part.landmarks.shape == (2, 68, 2)


@pytest.fixture(scope="module")
def face_frames(face_video):
    with open_source(str(face_video.path), SourceConfig()) as source:
        return [f.image for f in source][:6]


def test_regressor_replica_batches_callers_and_matches_the_model(ray_runtime, tiny_checkpoint, face_frames):
    regressor = Regressor.load(str(tiny_checkpoint), "cpu")
    rule = CropRule.from_meta(regressor.meta)
    detections = FaceDetector(DetectorConfig()).detect(face_frames)
    crops = [crop_faces(img, d.boxes, rule)[0] for img, d in zip(face_frames, detections)]
    replica = ray.remote(RegressorReplica).options(num_cpus=0).remote(str(tiny_checkpoint), "cpu", 32, 200.0)
    try:
        info = ray.get(replica.info.remote())
        assert isinstance(info, ModelInfo)
        assert info.version == regressor.version and info.meta["crop"]["size"] == 64
        # model.mirror_average: files
        assert (info.file_reading, info.live_reading) == (Reading.MIRROR_AVERAGE, Reading.ONE_VIEW)
        assert info.device == "cpu" and info.node_id == ray.get_runtime_context().get_node_id()
        assert info.presence_threshold is None   # the test checkpoint has no presence probe beside it
        # no emotion branch beside it: eta's classifier reads, and sessions label at its threshold
        assert info.emotion is EmotionSource.ETA
        got = ray.get([replica.predict.remote(c) for c in crops])  # sent together: one batch
        live = ray.get(replica.predict.remote(crops[0], True))      # a camera's crops: one view
        stats = ray.get(replica.stats.remote())
    finally:
        ray.kill(replica)
    assert stats["requests"] == len(crops) + 1 and stats["batches"] < len(crops)
    assert regressor.mirror_averaged   # the test checkpoint asks for it, as the shipped one does
    for c, pred in zip(crops, got):
        want = regressor(to_tensor(c, rule))   # a file's crops: averaged with their mirror images
        for name in ("expression", "quaternion", "centre", "scale", "shape"):
            np.testing.assert_allclose(getattr(pred, name), getattr(want, name), atol=1e-5)
    one_view = regressor(to_tensor(crops[0], rule), np.zeros(len(crops[0]), bool))
    np.testing.assert_allclose(live.quaternion, one_view.quaternion, atol=1e-5)
    assert np.abs(live.expression - got[0].expression).max() > 1e-4   # and the two readings differ


@pytest.mark.parametrize("policy, averages, live, want", [
    ("files", True, False, "mirror_average"), ("files", True, True, "one_view"),
    ("always", True, True, "mirror_average"), ("never", True, False, "one_view"),
    ("always", False, False, "one_view"),     # a checkpoint that does not ask is read once
])
def test_a_streams_reading_follows_the_policy_and_the_checkpoint(policy, averages, live, want):
    got = reading(MirrorAveraging(policy), averages, live)
    assert got is Reading(want) and str(got) == want   # the word events and Parquet metadata write


def test_model_info_says_how_each_kind_of_stream_is_read():
    info = ModelInfo(version="v1", meta={}, presence_threshold=0.5, file_reading=Reading.MIRROR_AVERAGE,
                     live_reading=Reading.ONE_VIEW, device="cpu", node_id="n")
    assert info.reading_for(live=False) is Reading.MIRROR_AVERAGE
    assert info.reading_for(live=True) is Reading.ONE_VIEW
    assert pickle.loads(pickle.dumps(info)) == info   # it travels from the replica's process
    with pytest.raises(AttributeError):
        info.version = "v2"   # frozen: what the replica said stays said


def test_detector_replica_matches_the_detector(shared_replicas, face_frames):
    got = ray.get(shared_replicas.detect(face_frames))
    want = FaceDetector(DetectorConfig()).detect(face_frames)
    assert [len(d) for d in got] == [1] * len(face_frames)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.boxes, w.boxes, atol=1e-3)
        np.testing.assert_allclose(g.scores, w.scores, atol=1e-5)


def test_detector_replica_batches_frames_of_several_callers(ray_runtime, face_frames):
    replica = ray.remote(DetectorReplica).options(num_cpus=0).remote(DetectorConfig(batch_size=8), 200.0)
    try:
        # three streams' frames, sent together: one network batch, each its own detections
        got = ray.get([replica.detect.remote(face_frames[i:i + 2], i == 0) for i in (0, 2, 4)])
        stats = ray.get(replica.stats.remote())
    finally:
        ray.kill(replica)
    want = FaceDetector(DetectorConfig()).detect(face_frames)
    assert [len(g) for g in got] == [2, 2, 2]
    for g, w in zip([d for part in got for d in part], want):
        np.testing.assert_allclose(g.boxes, w.boxes, atol=1e-3)
    assert (stats["calls"], stats["frames"], stats["batches"], stats["live_requests"]) == (3, 6, 1, 1)


def test_replicas_travel_by_pickle(shared_replicas, face_frames):
    clone = pickle.loads(pickle.dumps(shared_replicas))
    assert clone.detectors == shared_replicas.detectors and clone.regressors == shared_replicas.regressors
    assert [len(d) for d in ray.get(clone.detect(face_frames[:2]))] == [1, 1]
    with pytest.raises(ValueError):
        Replicas([], shared_replicas.regressors)


def test_replicas_that_cannot_fit_fail_with_what_is_free_instead_of_pending(ray_runtime):
    from streamer.config import load_config

    cfg = load_config(overrides={"model": {"num_cpus_per_replica": 8}})
    assert replica_needs(cfg) == {"CPU": 16, "GPU": 0}
    t0 = time.monotonic()
    with pytest.raises(NoRoomForReplicas, match=r"CPU: 16 needed, [\d.]+ of 2 free"):
        wait_for_room(cfg, patience_s=0.5)
    assert time.monotonic() - t0 < 10
    wait_for_room(load_config(overrides={"model": {"num_cpus_per_replica": 0}}), patience_s=0)
