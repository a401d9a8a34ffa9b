"""workers.identity: dlib's face embedding on real faces, and the identity crop rule."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.config import DetectorConfig
from workers.detector import FaceDetector
from workers.identity import (
    IDENTITY_DIM,
    MIN_FACE_PX,
    SAME_PERSON_MAX,
    SPLIT_MIN,
    FaceIdentity,
    IdentityCropRule,
)

DATA = Path(__file__).resolve().parents[3] / "shared/data"
REAL = DATA / "real"
pytestmark = pytest.mark.skipif(not REAL.exists(), reason="shared real media not present")


def frames(path: Path, indices: list[int]) -> list[np.ndarray]:
    import av

    want = set(indices)
    with av.open(str(path)) as f:
        got = {i: fr.to_ndarray(format="rgb24") for i, fr in enumerate(f.decode(video=0)) if i in want}
    return [got[i] for i in indices]


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(DetectorConfig(), threads=1)


@pytest.fixture(scope="module")
def model() -> FaceIdentity:
    return FaceIdentity()


def largest_box(detector: FaceDetector, image: np.ndarray) -> np.ndarray:
    det = detector.detect([image])[0]
    assert len(det), "no face found"
    area = (det.boxes[:, 2] - det.boxes[:, 0]) * (det.boxes[:, 3] - det.boxes[:, 1])
    return det.boxes[int(np.argmax(area))]


def embed_largest(detector, model, images: list[np.ndarray]) -> np.ndarray:
    rule = IdentityCropRule()
    patches = np.concatenate([rule.cut(img, largest_box(detector, img)[None]) for img in images])
    return model.embed(patches)


def test_thresholds_are_ordered():
    assert 0 < SAME_PERSON_MAX < SPLIT_MIN < 2 and MIN_FACE_PX > 0


def test_one_person_close_two_people_far(detector, model):
    # two frames 1.5 s apart of obama.mp4 (one speaker), two of vr_2 (another man)
    obama = frames(REAL / "obama.mp4", [0, 40])
    other = frames(REAL / "video" / "vr_2.mp4", [0, 100])
    e = embed_largest(detector, model, obama + other)
    assert e.shape == (4, IDENTITY_DIM) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)   # unit rows
    d = FaceIdentity.distance(e, e)
    assert d[0, 1] < SPLIT_MIN and d[2, 3] < SPLIT_MIN       # one sample against another
    assert d[:2, 2:].min() > SPLIT_MIN + 0.1, d
    # a track's mean compares as it is (distance normalises its inputs)
    mean = e[:2].mean(0, keepdims=True)
    assert FaceIdentity.distance(mean, e[:1])[0, 0] < FaceIdentity.distance(mean, e[2:3])[0, 0] - SPLIT_MIN / 2


def test_distance_shape_and_symmetry():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, IDENTITY_DIM)), rng.normal(size=(5, IDENTITY_DIM))
    d = FaceIdentity.distance(a, b)
    assert d.shape == (3, 5) and np.all(d >= 0) and np.all(d <= 2)
    np.testing.assert_allclose(d, FaceIdentity.distance(b, a).T)
    np.testing.assert_allclose(FaceIdentity.distance(a, 7.0 * a).diagonal(), 0.0, atol=1e-6)
    np.testing.assert_allclose(FaceIdentity.distance(a, -a).diagonal(), 2.0)


def test_no_faces(model):
    rule = IdentityCropRule()
    image = np.zeros((90, 120, 3), np.uint8)
    assert rule.cut(image, np.zeros((0, 4))).shape == (0, rule.side, rule.side, 3)
    e = model.embed(np.zeros((0, rule.side, rule.side, 3), np.uint8))
    assert e.shape == (0, IDENTITY_DIM) and e.dtype == np.float32
    assert FaceIdentity.distance(e, np.ones((2, IDENTITY_DIM))).shape == (0, 2)


@pytest.mark.parametrize("rule, box", [
    (IdentityCropRule(), (100.0, 120.0, 180.0, 220.0)),          # 80 x 100: the square is 100 px
    (IdentityCropRule(side=80, margin=2.0), (50.0, 40.0, 90.0, 70.0)),   # 40 x 30: 40 px
])
def test_box_in_patch_maps_back(rule, box):
    # a white square of side max(w, h) about the box centre, at one image pixel per patch pixel
    x1, y1, x2, y2 = box
    s = max(x2 - x1, y2 - y1)
    assert s * rule.margin == rule.side
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    image = np.zeros((300, 300, 3), np.uint8)
    image[int(cy - s / 2):int(cy + s / 2), int(cx - s / 2):int(cx + s / 2)] = 255
    patch = rule.cut(image, np.array([box]))[0]
    ys, xs = np.nonzero(patch[..., 0] > 127)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == rule.box_in_patch()
    bx1, by1, bx2, by2 = rule.box_in_patch()
    assert bx2 - bx1 == by2 - by1 == rule.side / rule.margin and (bx1 + bx2) / 2 == rule.side / 2


def test_patch_at_the_frame_edge(detector, model):
    image = cv2.cvtColor(cv2.imread(str(REAL / "obama-720p.jpg")), cv2.COLOR_BGR2RGB)
    box = largest_box(detector, image)
    rule = IdentityCropRule()
    # the same face in a frame that starts just left of the face box: the patch's left part
    # lies outside the frame and is zero padding
    left = int(box[0]) - 4
    edge = np.ascontiguousarray(image[:, left:])
    moved = box - np.array([left, 0, left, 0], np.float32)
    full, cut = rule.cut(image, box[None]), rule.cut(edge, moved[None])
    x1 = rule.box_in_patch()[0]
    assert np.all(cut[0, :, :int(x1) - 3] == 0) and full[0, :, :int(x1) - 3].any()
    e = model.embed(np.concatenate([full, cut]))
    assert FaceIdentity.distance(e[:1], e[1:])[0, 0] < SAME_PERSON_MAX


@pytest.mark.skipif(not (DATA / "identity").exists(), reason="identity photos not present")
def test_identity_photos_auc(detector, model):
    folder = DATA / "identity"
    rows = [line.split(",") for line in (folder / "pairs.csv").read_text().split()[1:]]
    names = sorted({n for a, b, _ in rows for n in (a, b)})
    images = [cv2.cvtColor(cv2.imread(str(folder / "images" / n)), cv2.COLOR_BGR2RGB) for n in names]
    e = embed_largest(detector, model, images)
    D = FaceIdentity.distance(e, e)
    at = {n: i for i, n in enumerate(names)}
    d = np.array([D[at[a], at[b]] for a, b, _ in rows])
    same = np.array([s == "1" for _, _, s in rows])
    auc = np.mean(d[same][:, None] < d[~same][None, :])
    assert auc > 0.95
