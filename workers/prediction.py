"""The models' outputs as plain values: what the replicas send and the sessions read.

:class:`Prediction` (the regressor's per-face outputs) and :class:`Detections` (the
detector's faces in one image) are defined here, in a module that imports numpy and
nothing else, because they cross processes: a stream session unpickles them, and
unpickling imports the module that defines a class. Defined beside the networks, they
would load torch and onnxruntime into every process that hosts streams (~200 MB each);
here they cost nothing. :mod:`workers.regressor` and :mod:`workers.detector` re-export
them under their old names.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass
class Prediction:
    """Per-face outputs for one batch; arrays have the batch as first axis."""

    expression: np.ndarray   # (N, 29)
    rotation: np.ndarray     # (N, 3, 3)
    euler: np.ndarray        # (N, 3) yaw, pitch, roll degrees (AFLW signs)
    quaternion: np.ndarray   # (N, 4) w, x, y, z
    centre: np.ndarray       # (N, 2) face centre in crop pixels
    scale: np.ndarray        # (N,) crop pixels per cm
    shape: np.ndarray        # (N, 99)
    landmarks: np.ndarray    # (N, 68, 2) crop pixels
    # (N, 7) calibrated probabilities of workers.emotion.CLASSES, read by the emotion branch
    # or the classifier over expression shipped beside the checkpoint; NaN where neither is
    # (None when constructed without them: __post_init__ fills in the NaN arrays)
    emotion_probs: np.ndarray = None  # type: ignore[assignment]
    # (N,) probability that each crop frames a face (workers.presence); NaN without a probe
    presence: np.ndarray = None  # type: ignore[assignment]
    # (N,) whether the crop's pixels can carry an expression (workers.face_quality, read by
    # workers.emotion_labels.label): the face box's mean grey level and its standard
    # deviation (0-255), and its detail relative to that contrast; NaN where not measured
    luminance: np.ndarray = None  # type: ignore[assignment]
    contrast: np.ndarray = None  # type: ignore[assignment]
    sharpness: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.emotion_probs is None:
            self.emotion_probs = np.full((len(self.expression), 7), np.nan, np.float32)
        for name in ("presence", "luminance", "contrast", "sharpness"):
            if getattr(self, name) is None:
                setattr(self, name, np.full(len(self.expression), np.nan, np.float32))

    def __len__(self) -> int:
        return len(self.expression)


def slice_prediction(pred: Prediction, start: int, stop: int) -> Prediction:
    """Rows ``start:stop`` of every array of a batched Prediction."""
    return Prediction(**{f.name: getattr(pred, f.name)[start:stop] for f in dataclasses.fields(pred)})


@dataclass
class Detections:
    """Faces found in one image, best score first, in that image's original pixels.

    Landmarks are, in image terms: the eye on the image's left, the eye on the image's
    right, the nose tip, the mouth corner on the image's left, the one on the right.
    """

    boxes: np.ndarray      # (N, 4) float32 x1, y1, x2, y2
    scores: np.ndarray     # (N,) float32
    landmarks: np.ndarray  # (N, 5, 2) float32 x, y

    def __len__(self) -> int:
        return len(self.scores)
