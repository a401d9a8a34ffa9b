"""Shared fixtures: a real Redis server for the session, FaceRecord factories."""
from __future__ import annotations

import dataclasses
import math
import os
import tempfile

import numpy as np
import pytest
import redis

from streamer.data.record import BoxSource, FaceRecord
from streamer.pipeline.redis_server import EmbeddedRedis
from workers.emotion_labels import EMOTION_ABSTAIN, EMOTION_CLASSES

# the regressor's exported ONNX graphs are cached under XDG_CACHE_HOME (workers/onnx_network.py):
# the tests, and the processes they start, keep theirs out of the user's home
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="facestream-test-cache-")


@pytest.fixture(scope="session")
def redis_server():
    """One embedded redis-server for the whole test session (tests may restart it)."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server):
    """URL of the session server, running and empty."""
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


def _record(rng: np.random.Generator, stream_id: str, frame: int, track: int) -> FaceRecord:
    def vec(n: int) -> np.ndarray:
        return rng.normal(size=n).astype(np.float32)

    return FaceRecord(
        stream_id=stream_id, frame_index=frame, pts=frame / 30.0 + 1e-9 * track,
        wall_time=1.7e9 + frame / 30.0, track_id=track,
        box=rng.uniform(0, 640, 4).astype(np.float32), score=float(rng.uniform(0.5, 1.0)),
        expression=vec(29), pose=vec(6), quaternion=vec(4), shape=vec(99), blendshapes=vec(53),
        expression_raw=vec(29), pose_raw=vec(6), quaternion_raw=vec(4), shape_raw=vec(99),
        model_version="test@fm1-abcdef",
        emotion=str(rng.choice(EMOTION_CLASSES + EMOTION_ABSTAIN)), emotion_raw=str(rng.choice(EMOTION_CLASSES)),
        emotion_probs=rng.dirichlet(np.ones(7)).astype(np.float32),
        emotion_probs_raw=rng.dirichlet(np.ones(7)).astype(np.float32),
        box_source=BoxSource(rng.choice(list(BoxSource))), presence=float(np.float32(rng.uniform())),
    )


@pytest.fixture
def make_records():
    """make_records(frames, faces, stream_id="cam1", seed=0): `faces` tracks in each of
    `frames` frames, float32-exact vectors, in frame then track order."""
    def make(frames: int, faces: int = 2, stream_id: str = "cam1", seed: int = 0) -> list[FaceRecord]:
        rng = np.random.default_rng(seed)
        return [_record(rng, stream_id, f, t) for f in range(frames) for t in range(1, faces + 1)]
    return make


@pytest.fixture
def assert_records_equal():
    """Field-by-field equality (FaceRecord's generated __eq__ cannot compare arrays;
    NaN equals NaN)."""
    def check(got: list[FaceRecord], want: list[FaceRecord]) -> None:
        assert len(got) == len(want)
        for g, w in zip(got, want):
            for f in dataclasses.fields(FaceRecord):
                a, b = getattr(g, f.name), getattr(w, f.name)
                if isinstance(b, np.ndarray):
                    assert a.dtype == np.float32 and np.array_equal(a, b), f.name
                elif isinstance(b, float) and math.isnan(b):
                    assert type(a) is float and math.isnan(a), f.name
                else:
                    assert a == b and type(a) is type(b), f.name
    return check


# --------------------------------------------------------------------------------------
# Pipeline fixtures: real faces in real encoded videos, a tiny trained-format checkpoint,
# one private Ray cluster for the whole test session.
# --------------------------------------------------------------------------------------
from pathlib import Path  # noqa: E402  (kept with the fixtures that need it)

REAL_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
VIDEO_W, VIDEO_H, VIDEO_FPS, VIDEO_FRAMES = 320, 240, 25, 40


@dataclasses.dataclass(frozen=True)
class FaceVideo:
    """An h264 test clip: ``faces`` real faces visible in every one of ``frames`` frames."""

    path: Path
    frames: int
    fps: int
    faces: int


def _face_patches(image_name: str, side: int) -> list[np.ndarray]:
    """Square patches (1.5 × the detected box) around each real face in a photo."""
    import cv2

    from streamer.config import DetectorConfig
    from workers.detector import FaceDetector

    image = cv2.cvtColor(cv2.imread(str(REAL_MEDIA / image_name)), cv2.COLOR_BGR2RGB)
    boxes = FaceDetector(DetectorConfig()).detect([image])[0].boxes
    patches = []
    for x1, y1, x2, y2 in sorted(boxes.tolist()):
        half = max(x2 - x1, y2 - y1) * 0.75
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        patch = image[max(int(cy - half), 0):int(cy + half), max(int(cx - half), 0):int(cx + half)]
        patches.append(cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA))
    return patches


def _textured_background(seed: int = 0) -> np.ndarray:
    import cv2

    noise = np.random.default_rng(seed).uniform(0, 255, (VIDEO_H // 8, VIDEO_W // 8, 3)).astype(np.float32)
    smooth = cv2.resize(noise, (VIDEO_W, VIDEO_H), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth * 0.6 + 40, 0, 255).astype(np.uint8)


def write_video(path: Path, images, fps: int) -> Path:
    """Encode RGB frames (equal-sized uint8 arrays, from any iterable) with libx264."""
    import av

    with av.open(str(path), "w") as container:
        stream = None
        for image in images:
            if stream is None:
                stream = container.add_stream("libx264", rate=fps)
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt, stream.options = "yuv420p", {"preset": "ultrafast"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        assert stream is not None, "no frames to encode"
        for packet in stream.encode():
            container.mux(packet)
    return path


def encode_face_video(path: Path, patches: list[np.ndarray], frames: int = VIDEO_FRAMES) -> FaceVideo:
    """Paste the patches onto a textured background, the first moving left to right,
    the second right to left in a lower lane, and encode with libx264."""
    background = _textured_background()

    def images():
        for i in range(frames):
            image = background.copy()
            for k, patch in enumerate(patches):
                side = patch.shape[0]
                travel = (VIDEO_W - side - 20) * i / max(frames - 1, 1)
                x = int(10 + travel) if k == 0 else int(VIDEO_W - side - 10 - travel)
                y = (VIDEO_H - side) // 2 if len(patches) == 1 else 10 + k * (VIDEO_H - side - 20)
                image[y:y + side, x:x + side] = patch
            yield image

    write_video(path, images(), VIDEO_FPS)
    return FaceVideo(path, frames, VIDEO_FPS, len(patches))


@pytest.fixture(scope="session")
def face_video(tmp_path_factory) -> FaceVideo:
    """One real face (obama-720p.jpg) moving across a 320x240 clip, 40 frames at 25 fps."""
    return encode_face_video(tmp_path_factory.mktemp("video") / "one_face.mp4", _face_patches("obama-720p.jpg", 110))


@pytest.fixture(scope="session")
def two_face_video(tmp_path_factory) -> FaceVideo:
    """The two faces of two_people.jpg crossing each other in separate lanes."""
    return encode_face_video(tmp_path_factory.mktemp("video") / "two_faces.mp4", _face_patches("two_people.jpg", 90))


@pytest.fixture(scope="session")
def blank_video(tmp_path_factory) -> FaceVideo:
    """The textured background alone: a valid video without any face."""
    return encode_face_video(tmp_path_factory.mktemp("video") / "no_face.mp4", [], frames=12)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained ``tiny`` network saved in the shipped checkpoint format (marked
    trained so the pipeline accepts it): plumbing tests need the format, not accuracy."""
    import torch

    from workers import checkpoint, face_model
    from workers.networks import FaceRegressor

    torch.manual_seed(0)
    fm = face_model.load()
    meta = {"name": "test-tiny", "trained": True,
            "crop": {"size": 64, "enlarge": 0.25, "mean": [0.5] * 3, "std": [0.5] * 3},
            "inference": {"mirror_average": True}, "face_model": fm.meta()}
    path = checkpoint.save(FaceRegressor("tiny").eval(), meta, tmp_path_factory.mktemp("ckpt") / "test-tiny")
    tiny_emotion_classifier(path)
    return path


def tiny_emotion_classifier(ckpt: Path):
    """A seeded random emotion classifier beside checkpoint ``ckpt``, tied to its weights
    and face model as a fitted one is: plumbing tests need probabilities, not accuracy."""
    import numpy as np

    from workers import checkpoint, emotion, face_model

    rng = np.random.default_rng(0)
    clf = emotion.Classifier(mean=np.zeros(29), std=np.full(29, 0.05),
                             layers=[(rng.normal(size=(7, 29)), rng.normal(size=7))])
    clf.meta.update(face_model=face_model.load().meta(),
                    network={"name": "test-tiny", "weights_sha256": checkpoint.weights_sha256(ckpt)})
    return clf.save(emotion.path_for(ckpt))


@pytest.fixture(scope="session")
def ray_runtime():
    """One private local Ray cluster for the test session (2 logical CPUs), or none."""
    from streamer.pipeline import runtime

    rt = runtime.start(num_cpus=2)
    yield rt
    rt.stop()


@pytest.fixture
def pipeline_config(tiny_checkpoint, tmp_path):
    """Config for pipeline tests: the tiny checkpoint, half-CPU replicas (two runs'
    replicas fit the 2-CPU test cluster), Parquet under tmp_path/out, the detector on
    every frame (the tiny untrained network's landmarks cannot place faces between runs)."""
    from streamer.config import load_config

    return load_config(overrides={
        "model": {"checkpoint": str(tiny_checkpoint), "num_cpus_per_replica": 0.5, "max_wait_ms": 5.0},
        "detector": {"every_frames": 1},
        "parquet": {"out": str(tmp_path / "out")},
        "session": {"progress_every_s": 0.2},
    })


@pytest.fixture(scope="session")
def shared_replicas(ray_runtime, tiny_checkpoint):
    """Detector + regressor replicas (half a CPU each) shared by every session test, as
    production sessions share them."""
    from streamer.config import load_config
    from streamer.pipeline.replicas import Replicas

    cfg = load_config(overrides={"model": {"num_cpus_per_replica": 0.5, "max_wait_ms": 5.0}})
    replicas = Replicas.start(cfg, str(tiny_checkpoint))
    replicas.ready()
    yield replicas
    replicas.stop()
