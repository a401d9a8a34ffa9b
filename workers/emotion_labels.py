"""The emotion labels: the classes the classifier names and when a face gets none.

FER2013's seven classes, in the order of every probability vector; the three ways of
giving no label; and the thresholds that decide between them (ray_config.yaml's
``emotion`` section, applied by :func:`label`). Imports numpy and nothing else, so that
the record schema, the configuration and the sessions can use it without loading model
code (the classifier that computes the probabilities is :mod:`workers.emotion`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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


def label(probs: np.ndarray, face_px: np.ndarray | float | None = None, yaw: np.ndarray | float | None = None,
          pitch: np.ndarray | float | None = None, rule: EmotionConfig | None = None,
          held: list[str] | None = None) -> list[str]:
    """One label per row of ``probs``: the most likely class, or why there is none
    (``rule``'s thresholds; ray_config.yaml's ``emotion`` section). Size and pose are
    checked first: a tiny or profile face's confident guess is still a guess.

    ``held``: each face's previous label (a track's), kept while its class stays within
    ``rule.switch_margin`` of the most likely one and above the minimum probability, so
    that two nearly tied classes do not make the label flicker."""
    uncertain, too_small, too_turned = EMOTION_ABSTAIN
    rule = rule or EmotionConfig()
    probs = np.asarray(probs, np.float64).reshape(-1, len(EMOTION_CLASSES))
    n = len(probs)

    def bc(v: np.ndarray | float | None) -> np.ndarray:
        return np.broadcast_to(np.nan if v is None else np.asarray(v, np.float64), (n,))

    px, y, p = bc(face_px), bc(yaw), bc(pitch)
    out = []
    for i in range(n):
        if px[i] < rule.min_face_px:
            out.append(too_small)
        elif abs(y[i]) > rule.max_yaw or abs(p[i]) > rule.max_pitch:
            out.append(too_turned)
        elif not np.isfinite(probs[i]).all() or probs[i].max() < rule.min_prob:
            out.append(uncertain)
        else:
            top = int(probs[i].argmax())
            keep = EMOTION_CLASSES.index(held[i]) if held is not None and held[i] in EMOTION_CLASSES else top
            stays = probs[i, keep] >= max(probs[i, top] - rule.switch_margin, rule.min_prob)
            out.append(EMOTION_CLASSES[keep if stays else top])
    return out
