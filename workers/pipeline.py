"""Detect → crop → regress on still images, in one process: the library's steps, once.

Used where images are taken one batch at a time with the models in hand: ``facestream
predict`` (streamer/cli/predict.py), the bare loop of bench/pipeline_vs_loop.py (which must be
exactly these steps) and, for detection and cropping with its own (context) crop rule,
the teacher labelling of training/real_labels.py, which never regresses.

The streaming session does not use it: there the detector and the regressor are shared
Ray replicas that batch crops across streams (streamer/pipeline/replicas.py), and tracking sits
between detection and cropping (streamer/pipeline/session.py). The crop rule is the same one, from
the checkpoint (workers/crops.py).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from workers.crops import CropRule, crop_faces, to_tensor
from workers.detector import Detector
from workers.regressor import Prediction, Regressor


@dataclass
class ImageFaces:
    """The faces of one image: boxes in its pixels, their crops, and (once regressed) outputs."""

    boxes: np.ndarray                     # (N, 4) float32 x1, y1, x2, y2
    scores: np.ndarray                    # (N,) detector scores (1 for given boxes)
    crops: np.ndarray                     # (N, S, S, 3) uint8, cut with the rule given
    affines: np.ndarray                   # (N, 2, 3) crop coordinates -> image coordinates
    prediction: Prediction | None = None  # None until regressed, and for an image without faces

    def __len__(self) -> int:
        return len(self.boxes)


def crop_boxes(image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, rule: CropRule) -> ImageFaces:
    """Cut the crops of known boxes (e.g. ``predict --no-detect``'s whole-image box)."""
    crops, affines = crop_faces(image, boxes, rule)
    return ImageFaces(boxes=boxes, scores=scores, crops=crops, affines=affines)


def detect_and_crop(images: list[np.ndarray], detector: Detector, rule: CropRule) -> list[ImageFaces]:
    """Detect faces in RGB images (the detector's batch size per network call) and crop
    every detection with ``rule``: the checkpoint's rule for inference, or another one
    (training's context crops) when the crops are not for the regressor."""
    return [crop_boxes(image, det.boxes, det.scores, rule)
            for image, det in zip(images, detector.detect(images))]


def regress(faces: list[ImageFaces], regressor: Regressor, rule: CropRule) -> list[ImageFaces]:
    """Run the regressor once over the crops of all ``faces`` (cut with ``rule``, the
    checkpoint's) and give each image its share of the prediction. No faces, no call."""
    counts = [len(f) for f in faces]
    if not sum(counts):
        return faces
    pred = regressor(to_tensor(np.concatenate([f.crops for f in faces]), rule))
    start = 0
    for f, n in zip(faces, counts):
        if n:
            f.prediction = _rows(pred, start, start + n)
        start += n
    return faces


def detect_crop_regress(images: list[np.ndarray], detector: Detector, regressor: Regressor,
                        rule: CropRule | None = None) -> list[ImageFaces]:
    """Faces and their predictions for each image; ``rule`` defaults to the checkpoint's."""
    rule = rule or CropRule.from_meta(regressor.meta)
    return regress(detect_and_crop(images, detector, rule), regressor, rule)


def _rows(pred: Prediction, start: int, stop: int) -> Prediction:
    """Faces ``start:stop`` of a batch's prediction (every array has the batch first)."""
    return Prediction(**{f.name: getattr(pred, f.name)[start:stop] for f in fields(pred)})
