"""workers.pipeline: detect → crop → regress, one regressor call per batch of images."""
from __future__ import annotations

import numpy as np
import torch

from workers.crops import CropRule, crop_faces
from workers.detector import Detections
from workers.pipeline import crop_boxes, detect_and_crop, detect_crop_regress, regress
from workers.regressor import Regressor

torch.set_num_threads(1)


class BoxDetector:
    """Answers each image with the boxes it is given for it."""

    def __init__(self, boxes):
        self.boxes = boxes

    def detect(self, images):
        return [Detections(b, np.linspace(0.9, 0.8, len(b)).astype(np.float32), np.zeros((len(b), 5, 2), np.float32))
                for b in self.boxes[:len(images)]]


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(3)]


BOXES = [np.array([[10, 10, 60, 70], [80, 20, 140, 90]], np.float32),
         np.zeros((0, 4), np.float32),
         np.array([[30, 30, 100, 110]], np.float32)]


def test_each_image_gets_its_share_of_one_regressor_call(tiny_checkpoint):
    regressor = Regressor.load(str(tiny_checkpoint), "cpu")
    rule = CropRule.from_meta(regressor.meta)
    calls = []
    images = _images()

    class Counting:
        meta = regressor.meta

        def __call__(self, x):
            calls.append(len(x))
            return regressor(x)

    faces = detect_crop_regress(images, BoxDetector(BOXES), Counting())
    assert calls == [3]
    assert [len(f) for f in faces] == [2, 0, 1]
    assert faces[1].prediction is None
    for image, boxes, f in zip(images, BOXES, faces):
        crops, affines = crop_faces(image, boxes, rule)
        assert np.array_equal(f.crops, crops) and np.array_equal(f.affines, affines)
        if len(boxes):
            alone = regress([crop_boxes(image, boxes, f.scores, rule)], regressor, rule)[0].prediction
            assert len(f.prediction) == len(boxes)
            np.testing.assert_allclose(f.prediction.expression, alone.expression, atol=1e-4)
            np.testing.assert_allclose(f.prediction.euler, alone.euler, atol=1e-3)


def test_no_faces_no_call():
    def never(_):
        raise AssertionError("the regressor ran without crops")

    rule = CropRule(size=64)
    faces = regress(detect_and_crop(_images()[:1], BoxDetector([BOXES[1]]), rule), never, rule)
    assert len(faces[0]) == 0 and faces[0].prediction is None


def test_another_crop_rule_cuts_other_crops():
    ctx = CropRule(size=96, enlarge=0.6)
    f = detect_and_crop(_images()[:1], BoxDetector(BOXES), ctx)[0]
    assert f.crops.shape == (2, 96, 96, 3)
    assert np.array_equal(f.crops, crop_faces(_images()[0], BOXES[0], ctx)[0])
