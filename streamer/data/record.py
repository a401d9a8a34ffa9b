"""FaceRecord: the one value that flows from a stream session to the sinks.

Its encodings live beside it, one module each: :mod:`streamer.data.arrow` (the Parquet
schema and the upgrades of older files), :mod:`streamer.data.redis_codec` (one Redis
stream entry, the key names) and :mod:`streamer.data.version` (the version they share).
The constants here are the record's own shape, which both encodings follow, so that no
consumer parses fields by hand and no reader of the data loads the face model.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from workers.emotion_labels import EMOTION_CLASSES

N_EXP, N_SHAPE = 29, 99
POSE_FIELDS = ("yaw", "pitch", "roll", "tx", "ty", "scale")
# The face model's 53 ARKit-named expression blendshapes in its column order
# (workers.face_model.FaceModel.blend_names, from ICT-FaceKit; a test checks they agree).
# Kept here as a constant so that readers of the data never load the face model.
BLENDSHAPE_NAMES = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L",
    "browOuterUp_R", "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R",
    "eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L",
    "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R",
    "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimple_L", "mouthDimple_R", "mouthFrown_L",
    "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R",
    "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R",
    "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L",
    "noseSneer_R",
)
N_BLEND = len(BLENDSHAPE_NAMES)
# EMOTION_CLASSES (workers.emotion_labels) is the order of emotion_probs; readers take it
# from the data's own metadata (arrow.emotion_classes), the constant is what writers put there.
N_EMOTION = len(EMOTION_CLASSES)


class BoxSource(StrEnum):
    """Where a record's box came from. A ``StrEnum``: the value is what Parquet's
    ``box_source`` column and Redis's ``bs`` field hold, so the wire is plain text."""

    DETECTOR = "detector"   # a frame the detector ran on
    TRACKING = "tracking"   # placed between detector runs (streamer.tracking.follow)


def _no_probs() -> np.ndarray:
    return np.full(N_EMOTION, np.nan, np.float32)


@dataclass
class FaceRecord:
    """One tracked face in one frame.

    pose = (yaw, pitch, roll) in degrees with AFLW2000-3D signs (see workers/pose.py),
    then (tx, ty) the image-plane position of the head centre in pixels and ``scale`` the
    pixels per centimetre of the face model at that depth. quaternion is (w, x, y, z) of
    the same rotation. Smoothed values sit in the plain fields, the network's per-frame
    output in the ``*_raw`` fields.

    emotion is one of EMOTION_CLASSES or an abstention (EMOTION_ABSTAIN: uncertain,
    too_small, too_turned, too_dark, too_blurred), or "" where none was computed (schema
    version 1);
    emotion_probs are the classes' probabilities in EMOTION_CLASSES order (NaN without
    a classifier). The smoothed label is the label of the smoothed probabilities.

    box_source says where the box came from (:class:`BoxSource`): the detector on frames
    it ran on, tracking between its runs, where the box is placed from the regressor's
    landmarks of the face in an earlier frame and the track's motion (streamer.tracking.follow).

    person_id is shared by the tracks of one face in this stream (streamer.persons.book): a
    person's id is the track id of its first track, so it never collides with another
    person's and reads as "the face first seen as track N".
    """

    stream_id: str
    frame_index: int
    pts: float                      # seconds from the container's timestamps
    wall_time: float                # unix seconds when the record was made
    track_id: int
    box: np.ndarray                 # (4,) x1, y1, x2, y2 in pixels of the source frame
    score: float                    # detector confidence
    expression: np.ndarray          # (29,) smoothed eta
    pose: np.ndarray                # (6,) smoothed yaw, pitch, roll, tx, ty, scale
    quaternion: np.ndarray          # (4,) smoothed rotation
    shape: np.ndarray               # (99,) identity alpha (running mean over the track)
    blendshapes: np.ndarray         # (53,) smoothed eta read as ARKit-named blendshapes
    expression_raw: np.ndarray      # (29,)
    pose_raw: np.ndarray            # (6,)
    quaternion_raw: np.ndarray      # (4,)
    shape_raw: np.ndarray           # (99,)
    model_version: str = ""         # checkpoint name @ face model version + hash prefix
    emotion: str = ""               # label of the smoothed probabilities, or an abstention
    emotion_probs: np.ndarray = dataclasses.field(default_factory=_no_probs)      # (7,) smoothed
    emotion_raw: str = ""           # label of this frame's probabilities
    emotion_probs_raw: np.ndarray = dataclasses.field(default_factory=_no_probs)  # (7,)
    box_source: BoxSource = BoxSource.DETECTOR   # found by the detector, or placed by tracking
    presence: float = float("nan")  # probability that the crop framed a face (NaN: no probe)
    person_id: int | None = None    # who the face is within the stream (None: not computed)


# The record's fields in order: the Arrow columns follow it.
COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(FaceRecord))
# Float vectors in FaceRecord order, with their lengths. The Arrow columns and the packed
# Redis field both follow this order, so it is the single place that defines it.
VECTOR_FIELDS: tuple[tuple[str, int], ...] = (
    ("box", 4),
    ("expression", N_EXP),
    ("pose", len(POSE_FIELDS)),
    ("quaternion", 4),
    ("shape", N_SHAPE),
    ("blendshapes", N_BLEND),
    ("expression_raw", N_EXP),
    ("pose_raw", len(POSE_FIELDS)),
    ("quaternion_raw", 4),
    ("shape_raw", N_SHAPE),
    ("emotion_probs", N_EMOTION),       # version 2 on: the packed Redis field of version 1
    ("emotion_probs_raw", N_EMOTION),   # entries ends before these two
)
VECTOR_DIMS: dict[str, int] = dict(VECTOR_FIELDS)
# Vectors whose every component has a meaning of its own, by name: Parquet stores them as
# structs of named fields and JSON as objects, so that a reader asks for ``pose.yaw``
# rather than ``pose[1]``; coefficient vectors (eta, alpha), the box, the quaternion and
# the emotion probabilities (named in the metadata) stay plain vectors.
NAMED_VECTORS: dict[str, tuple[str, ...]] = {
    "pose": POSE_FIELDS,
    "pose_raw": POSE_FIELDS,
    "blendshapes": BLENDSHAPE_NAMES,
}
