"""FaceRecord: the one value that flows from a stream session to the sinks.

Its Arrow schema is the Parquet schema; its Redis encoding and decoder live here too, so
no consumer ever parses fields by hand.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SCHEMA_VERSION = 1
N_EXP, N_SHAPE, N_BLEND = 29, 99, 53
POSE_FIELDS = ("yaw", "pitch", "roll", "tx", "ty", "scale")


@dataclass
class FaceRecord:
    """One tracked face in one frame.

    pose = (yaw, pitch, roll) in degrees with AFLW2000-3D signs (see workers/pose.py),
    then (tx, ty) the image-plane position of the head centre in pixels and ``scale`` the
    pixels per centimetre of the face model at that depth. quaternion is (w, x, y, z) of
    the same rotation. Smoothed values sit in the plain fields, the network's per-frame
    output in the ``*_raw`` fields.
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
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def record_id(self) -> str:
        """Idempotent identity of the record: one per (stream, frame, track)."""
        return f"{self.stream_id}:{self.frame_index}:{self.track_id}"
