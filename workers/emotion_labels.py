"""The emotion labels: the classes the classifier names and when a face gets none.

FER2013's seven classes, in the order of every probability vector; the ways of giving no
label; and the thresholds that decide between them (ray_config.yaml's
``emotion`` section, applied by :func:`label`). Imports numpy and nothing else, so that
the record schema, the configuration and the sessions can use it without loading model
code (the classifier that computes the probabilities is :mod:`workers.emotion`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np

EMOTION_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
# appended only: data files name them in their metadata (streamer.data.arrow)
EMOTION_ABSTAIN = ("uncertain", "too_small", "too_turned", "too_dark", "too_blurred")


class EmotionSource(StrEnum):
    """What reads a face's emotion probabilities (``model.emotion``; docs/accuracy.md)."""

    # the emotion branch shipped beside the network (workers/emotion_branch.py): trunk
    # blocks fine-tuned on FER2013's labels; the better reader, at about 1.4x the network's CPU
    BRANCH = "branch"
    # the classifier over the 29 expression coefficients (workers/emotion.py): pose-invariant
    # by construction and free, but it only knows what eta encodes
    ETA = "eta"

    @property
    def min_prob(self) -> float:
        """The default ``emotion.min_prob`` for this reader, chosen on its own coverage /
        accuracy curve of held-out FER2013 faces (docs/accuracy.md): the most confident
        threshold that still labels at least 85% of faces. The branch's probabilities are
        sharper than eta's, so one threshold for both would over- or under-abstain."""
        # branch: 0.37 labels 86.9%, 0.661 of them right; eta: 0.32 labels 86.3%, 0.591 right
        return {EmotionSource.BRANCH: 0.37, EmotionSource.ETA: 0.32}[self]


@dataclass
class EmotionConfig:
    """When a face gets no emotion label (trade-offs in docs/accuracy.md).

    Each field's limits are in its metadata, the convention by which
    :mod:`streamer.config` checks every section when ray_config.yaml is read.
    """
    # most likely class below this: "uncertain". None: the reader's own (EmotionSource.min_prob:
    # 0.37 for the emotion branch, labelling 87% of held-out FER2013 faces, 0.661 of them
    # right; 0.32 for the classifier over eta); the curves are in docs/accuracy.md
    min_prob: float | None = field(default=None, metadata={"ge": 0})
    min_face_px: float = field(default=24.0, metadata={"ge": 0})  # box shorter side below this (source px): "too_small"
    max_yaw: float = field(default=60.0, metadata={"ge": 0})  # |yaw| beyond this (degrees): "too_turned"
    max_pitch: float = field(default=45.0, metadata={"ge": 0})  # |pitch| beyond this (degrees): "too_turned"
    # the face box's light (workers.face_quality, grey levels 0-255): darker on average, or
    # with less spread of grey than this, and a face says "too_dark". Held-out FER2013
    # faces darkened to a spread of 5 read 0.42 right, to 3 only 0.30 and mostly "angry";
    # at 8.5 still 0.47, and real dim faces (a film's, spread 19-21) read well
    # (docs/accuracy.md, "Faces that show no expression")
    min_luminance: float = field(default=10.0, metadata={"ge": 0, "le": 255})
    min_contrast: float = field(default=6.0, metadata={"ge": 0, "le": 128})
    # the face box's detail relative to its contrast (workers.face_quality; 0.3-1.4 on the
    # real faces measured, 0.5-1 on FER2013's): below this, defocus, motion or compression
    # has smoothed the mouth and brows away and the face says "too_blurred" (FER2013 faces
    # blurred to 0.14 read 0.16 right, 87% of them "angry"; at 0.33 still 0.51)
    min_sharpness: float = field(default=0.2, metadata={"ge": 0})
    # a track's smoothed label changes only to a class this much more probable than the
    # one it holds (no flicker)
    switch_margin: float = field(default=0.05, metadata={"ge": 0})

    def for_reader(self, source: EmotionSource) -> EmotionConfig:
        """These thresholds with ``min_prob`` set: as configured, else ``source``'s own."""
        return self if self.min_prob is not None else replace(self, min_prob=source.min_prob)


Values = np.ndarray | float | None


def label(probs: np.ndarray, face_px: Values = None, yaw: Values = None, pitch: Values = None,
          rule: EmotionConfig | None = None, held: list[str] | None = None, *,
          luminance: Values = None, contrast: Values = None, sharpness: Values = None) -> list[str]:
    """One label per row of ``probs``: the most likely class, or why there is none
    (``rule``'s thresholds; ray_config.yaml's ``emotion`` section). Size, light,
    sharpness and pose are checked first, in that order: a tiny, dark, blurred or profile
    face's confident guess is still a guess. ``luminance``, ``contrast`` and ``sharpness``
    are a Prediction's (workers.face_quality); None or NaN (not measured) passes, as for
    size and pose.

    ``held``: each face's previous label (a track's), kept while its class stays within
    ``rule.switch_margin`` of the most likely one and above the minimum probability, so
    that two nearly tied classes do not make the label flicker."""
    uncertain, too_small, too_turned, too_dark, too_blurred = EMOTION_ABSTAIN
    # a rule not resolved for its reader (min_prob None) reads as the default reader's
    rule = (rule or EmotionConfig()).for_reader(EmotionSource.BRANCH)
    assert rule.min_prob is not None
    probs = np.asarray(probs, np.float64).reshape(-1, len(EMOTION_CLASSES))
    n = len(probs)

    def bc(v: np.ndarray | float | None) -> np.ndarray:
        return np.broadcast_to(np.nan if v is None else np.asarray(v, np.float64), (n,))

    px, y, p = bc(face_px), bc(yaw), bc(pitch)
    lum, con, sharp = bc(luminance), bc(contrast), bc(sharpness)
    out = []
    for i in range(n):
        if px[i] < rule.min_face_px:
            out.append(too_small)
        elif lum[i] < rule.min_luminance or con[i] < rule.min_contrast:
            out.append(too_dark)
        elif sharp[i] < rule.min_sharpness:
            out.append(too_blurred)
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
