"""Call groups: the regressor requests of one process's sessions share a Ray call while
another is out; each request still gets its own rows, as the model computes them, and a
failed call fails its requests without stopping the next ones."""
from __future__ import annotations

import asyncio
import pickle

import numpy as np
import pytest
import ray

from streamer.config import DetectorConfig, SourceConfig
from streamer.pipeline.call_groups import CropRequest, group_for
from streamer.pipeline.replicas import RegressorReplica
from streamer.sources.files import open_source
from workers.crops import CropRule, crop_faces, to_tensor
from workers.detector import FaceDetector
from workers.regressor import Regressor


@pytest.fixture(scope="module")
def face_crops(face_video, tiny_checkpoint):
    with open_source(str(face_video.path), SourceConfig()) as source:
        frames = [f.image for f in source][:6]
    rule = CropRule.from_meta(Regressor.load(str(tiny_checkpoint), "cpu").meta)
    found = FaceDetector(DetectorConfig()).detect(frames)
    return [crop_faces(img, d.boxes, rule)[0] for img, d in zip(frames, found)]


@pytest.fixture
def replica(ray_runtime, tiny_checkpoint):
    actor = ray.remote(RegressorReplica).options(num_cpus=0).remote(str(tiny_checkpoint), "cpu", 32, 20.0)
    ray.get(actor.info.remote())
    yield actor
    ray.kill(actor)


def test_requests_made_while_a_call_is_out_share_the_next_call(replica, face_crops, tiny_checkpoint):
    regressor = Regressor.load(str(tiny_checkpoint), "cpu")
    rule = CropRule.from_meta(regressor.meta)

    async def six_sessions():
        group = group_for(replica)
        # all asked at once: the first goes alone, the five that find it out go together (a
        # group may carry files' and cameras' requests; Replicas.predict keeps them apart)
        asked = [group.submit(CropRequest(c, live=i % 2 == 1)) for i, c in enumerate(face_crops)]
        return await asyncio.gather(*asked)

    got = asyncio.run(six_sessions())
    stats = ray.get(replica.stats.remote())
    assert stats["requests"] == len(face_crops) and stats["calls"] == 2
    for i, (crops, pred) in enumerate(zip(face_crops, got)):
        mirror = np.full(len(crops), i % 2 == 0)   # a file's crops mirror-averaged, a camera's one view
        want = regressor(to_tensor(crops, rule), mirror)
        assert len(pred) == len(crops)
        for name in ("expression", "quaternion", "centre", "scale", "shape"):
            np.testing.assert_allclose(getattr(pred, name), getattr(want, name), atol=1e-5, err_msg=name)


def test_a_failed_request_fails_alone_and_the_next_ones_go(replica, face_crops):
    async def go():
        group = group_for(replica)
        bad = group.submit(CropRequest(np.zeros((1, 7, 3), np.uint8)))   # not a crop
        good = [group.submit(CropRequest(c)) for c in face_crops[:2]]
        first = await asyncio.gather(bad, return_exceptions=True)
        return first[0], await asyncio.gather(*good), await group.submit(CropRequest(face_crops[2]))

    error, after, later = asyncio.run(go())
    assert isinstance(error, Exception)
    assert [len(p) for p in after] == [len(c) for c in face_crops[:2]]
    assert len(later) == len(face_crops[2])


def test_a_gone_replica_fails_every_waiting_request_with_its_error(replica, face_crops):
    async def go():
        group = group_for(replica)
        ray.kill(replica)
        asked = [group.submit(CropRequest(c)) for c in face_crops[:3]]
        return await asyncio.gather(*asked, return_exceptions=True)

    errors = asyncio.run(go())
    assert all(isinstance(e, ray.exceptions.RayActorError) for e in errors)


def test_copies_of_a_handle_in_one_loop_share_one_group_per_kind_of_stream(replica):
    async def go():
        copy = pickle.loads(pickle.dumps(replica))   # as each session unpickles its Replicas
        return (group_for(replica) is group_for(copy), group_for(replica, live=True) is group_for(copy, live=True),
                group_for(replica) is group_for(replica, live=True))

    assert asyncio.run(go()) == (True, True, False)


def test_a_camera_does_not_wait_for_a_files_call(replica, face_crops):
    """Cameras' and files' requests go in groups of their own: with a file's call of many
    requests out, a camera's request is sent at once and the replica answers it between the
    file's batches (live first), not after the file's whole call."""
    answered: list[str] = []

    async def go():
        files = group_for(replica, live=False)
        part = np.concatenate(face_crops * 5)    # a file session's request: one batch of its own
        asked = [files.submit(CropRequest(part)) for _ in range(30)]   # one alone, then 29 in one call
        for a in asked:
            a.add_done_callback(lambda _: answered.append("file"))
        await asked[0]
        await asyncio.sleep(0.01)                # the 29 are at the replica
        camera = group_for(replica, live=True).submit(CropRequest(face_crops[0], live=True))
        camera.add_done_callback(lambda _: answered.append("camera"))
        await asyncio.gather(camera, *asked)

    asyncio.run(go())
    assert answered.index("camera") < 20   # at least ten of the file's requests answered after it
    assert ray.get(replica.stats.remote())["calls"] == 3
