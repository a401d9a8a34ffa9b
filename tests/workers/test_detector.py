"""workers.detector on real photos and a real video frame."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.config import DetectorConfig, SourceConfig
from streamer.sources.files import open_source
from workers.detector import Detections, FaceDetector, _anchors, _nms

REAL = Path(__file__).resolve().parents[3] / "shared/data/real"
pytestmark = pytest.mark.skipif(not REAL.exists(), reason="shared real media not present")


def photo(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(REAL / name)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(DetectorConfig(), threads=1)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    names = ["obama-720p.jpg", "two_people.jpg", "obama_and_biden.jpg", "group_test1.jpg"]
    return {n: photo(n) for n in names}


def test_face_counts_on_photos_in_one_batch(detector, photos):
    # Different sizes in one call: one network batch per input size, answers in order,
    # each as that image alone gets it (the order of sizes mixed on purpose).
    found = dict(zip(photos, detector.detect(list(photos.values()))))
    for name, img in photos.items():
        np.testing.assert_allclose(found[name].boxes, detector.detect([img])[0].boxes, atol=1e-3)
    # obama_and_biden.jpg also shows a child's face in the lower right; group_test1 is a
    # two-person debate split screen.
    assert {n: len(d) for n, d in found.items()} == {
        "obama-720p.jpg": 1, "two_people.jpg": 2, "obama_and_biden.jpg": 3, "group_test1.jpg": 2}
    for name, d in found.items():
        h, w = photos[name].shape[:2]
        assert d.boxes.dtype == d.scores.dtype == d.landmarks.dtype == np.float32
        assert d.landmarks.shape == (len(d), 5, 2)
        assert np.all(np.diff(d.scores) <= 0) and np.all(d.scores > 0.75)
        assert np.all(d.boxes[:, :2] > -0.05 * w) and np.all(d.boxes[:, 2] < 1.05 * w)
        assert np.all(d.boxes[:, 3] < 1.05 * h)


def test_obama_box_and_landmarks_are_plausible(detector, photos):
    img = photos["obama-720p.jpg"]
    d = detector.detect([img])[0]
    (x1, y1, x2, y2), lm = d.boxes[0], d.landmarks[0]
    # The face sits right of centre in the upper half of this 1280x720 portrait.
    assert 550 < x1 < 640 and 700 < x2 < 790 and 20 < y1 < 100 and 240 < y2 < 320
    assert 0.6 < (x2 - x1) / (y2 - y1) < 0.9
    assert np.all((lm[:, 0] > x1) & (lm[:, 0] < x2) & (lm[:, 1] > y1) & (lm[:, 1] < y2))
    left_eye, right_eye, nose, mouth_l, mouth_r = lm
    assert left_eye[0] < right_eye[0] and mouth_l[0] < mouth_r[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    # Same face at full resolution (no downscaling) lands within a few pixels.
    full = FaceDetector(replace(DetectorConfig(), max_side=1280)).detect([img])[0]
    assert len(full) == 1 and np.abs(full.boxes[0] - d.boxes[0]).max() < 15


def test_video_frame(detector):
    with open_source(str(REAL / "obama.mp4"), SourceConfig()) as src:
        frame = next(iter(src))
    d = detector.detect([frame.image])[0]
    assert len(d) == 1
    x1, y1, x2, y2 = d.boxes[0]
    assert 0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 720 and x2 - x1 > 100


def test_thresholds_filter(photos):
    img = photos["obama_and_biden.jpg"]
    none = FaceDetector(DetectorConfig(score_threshold=0.9999999)).detect([img])[0]
    assert len(none) == 0 and none.boxes.shape == (0, 4) and none.landmarks.shape == (0, 5, 2)
    # The child's face is the smallest of the three (about 145 px at full resolution).
    big = FaceDetector(DetectorConfig(min_face_px=160)).detect([img])[0]
    assert len(big) == 2


def test_batching_matches_single_images(photos):
    imgs = [photos["two_people.jpg"], photos["obama-720p.jpg"], photos["group_test1.jpg"]]
    one = FaceDetector(DetectorConfig(batch_size=1)).detect(imgs)
    many = FaceDetector(DetectorConfig(batch_size=8)).detect(imgs)
    for a, b in zip(one, many):
        assert len(a) == len(b)
        # Padding shifts nothing; it only changes the context the network sees near the
        # image border a little.
        np.testing.assert_allclose(a.boxes, b.boxes, atol=3)


def test_empty_and_blank_inputs(detector):
    assert detector.detect([]) == []
    (d,) = detector.detect([np.zeros((48, 64, 3), np.uint8)])
    assert isinstance(d, Detections) and len(d) == 0
    with pytest.raises(ValueError, match="uint8 RGB"):
        detector.detect([np.zeros((48, 64), np.uint8)])


def test_anchor_layout_and_nms():
    a = _anchors(64, 96)
    # (8x12 cells * 2) + (4x6 * 2) + (2x3 * 2) anchors, cell by cell, sizes innermost.
    assert len(a) == 192 + 48 + 12
    np.testing.assert_array_equal(a[:3], [[4, 4, 16, 16], [4, 4, 32, 32], [12, 4, 16, 16]])
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], float)
    assert _nms(boxes, 0.4).tolist() == [0, 2]
    assert _nms(boxes, 0.95).tolist() == [0, 1, 2, 3]
