"""The emotion labels: the classes the classifier names and when a face gets none.

FER2013's seven classes, in the order of every probability vector; the three ways of
giving no label; and the thresholds that decide between them (ray_config.yaml's
``emotion`` section, applied by :func:`workers.emotion.label`). Imports nothing, so that
the record schema and the configuration can use it without loading model code.
"""
from __future__ import annotations

from dataclasses import dataclass, field

EMOTION_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
EMOTION_ABSTAIN = ("uncertain", "too_small", "too_turned")


@dataclass
class EmotionConfig:
    """When a face gets no emotion label (trade-offs in docs/accuracy.md).

    Each field's limits are in its metadata, the convention by which
    :mod:`streamer.config` checks every section when ray_config.yaml is read.
    """
    min_prob: float = field(default=0.4, metadata={"ge": 0})  # most likely class below this: "uncertain"
    min_face_px: float = field(default=24.0, metadata={"ge": 0})  # box shorter side below this (source px): "too_small"
    max_yaw: float = field(default=60.0, metadata={"ge": 0})  # |yaw| beyond this (degrees): "too_turned"
    max_pitch: float = field(default=45.0, metadata={"ge": 0})  # |pitch| beyond this (degrees): "too_turned"
    # a track's smoothed label changes only to a class this much more probable than the
    # one it holds (no flicker)
    switch_margin: float = field(default=0.05, metadata={"ge": 0})
