"""Emotion from the 29 expression coefficients: a tiny classifier shipped beside the network.

The default reader is the emotion branch (workers/emotion_branch.py), which reads more
than eta and names more faces right; this classifier reads when ``model.emotion`` is
``eta`` (no cost beyond the network) or when a network has no branch.

It reads eta and nothing else. Pose, identity and framing are what the network factors out
of eta, so a label read from eta alone is pose-invariant by construction (the seed's
3D-aided expression recognition); the price is that it can only know what eta encodes.

The classifier is a few small dense layers (a multinomial logistic regression when there
is one) over z-scored eta, with a temperature that calibrates its probabilities. It lives
in ``NAME.emotion.json`` next to the network's ``NAME.safetensors``: a few kilobytes,
a microsecond per face, so it does not change the regressor's throughput. Its numbers only
mean something for the network whose eta it was fitted on, in the face model that eta is
read in, so loading refuses a file made for another face model (as checkpoint.load_meta
does for the network) or for other network weights.

Labels: one of CLASSES, or an abstention (ABSTAIN): ``uncertain`` when the most likely
class is below a minimum probability, ``too_small`` / ``too_turned`` when the face is too
small or too far from frontal for eta (and so the label) to be trusted, ``too_dark`` /
``too_blurred`` when its pixels are too dim or too smooth to carry an expression
(workers/face_quality.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workers import checkpoint, face_model

# label() and its thresholds live in emotion_labels, which imports no model code (sessions use it)
from workers.emotion_labels import EMOTION_ABSTAIN, EMOTION_CLASSES, EmotionConfig, label  # noqa: F401

FORMAT = "facestream-emotion/1"
CLASSES = EMOTION_CLASSES         # FER2013's seven, in the order of every probability vector
ABSTAIN = EMOTION_ABSTAIN
UNCERTAIN, TOO_SMALL, TOO_TURNED, TOO_DARK, TOO_BLURRED = ABSTAIN
LABELS = CLASSES + ABSTAIN


class EmotionError(checkpoint.CheckpointError):
    """An emotion classifier is missing, damaged, or made for another network or face model
    (a checkpoint error: the network and what ships beside it are used together)."""


def path_for(ckpt: str | Path) -> Path:
    """Where the classifier of a network checkpoint lives: ``NAME.emotion.json`` beside it."""
    return checkpoint.sidecar_path(ckpt, "emotion")


@dataclass
class Classifier:
    """z = (eta - mean) / std; dense layers with ReLU between; softmax(logits / temperature)."""

    mean: np.ndarray                     # (29,)
    std: np.ndarray                      # (29,)
    layers: list[tuple[np.ndarray, np.ndarray]]   # [(W (out, in), b (out,)), ...]
    temperature: float = 1.0
    classes: tuple[str, ...] = CLASSES
    meta: dict = field(default_factory=dict)

    def logits(self, eta: np.ndarray) -> np.ndarray:
        h = (np.asarray(eta, np.float64).reshape(-1, len(self.mean)) - self.mean) / self.std
        for i, (W, b) in enumerate(self.layers):
            h = h @ W.T + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h

    def probs(self, eta: np.ndarray) -> np.ndarray:
        """(N, 29) eta -> (N, 7) calibrated class probabilities (float32, rows sum to 1)."""
        z = self.logits(eta) / self.temperature
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(1, keepdims=True)).astype(np.float32)

    # ---------------------------------------------------------------- file

    def to_json(self) -> dict:
        return {"format": FORMAT, "classes": list(self.classes), "temperature": float(self.temperature),
                "mean": self.mean.tolist(), "std": self.std.tolist(),
                "layers": [{"W": W.tolist(), "b": b.tolist()} for W, b in self.layers], **self.meta}

    @classmethod
    def from_json(cls, d: dict) -> "Classifier":
        if d.get("format") != FORMAT:
            raise EmotionError(f"unknown emotion classifier format {d.get('format')!r}")
        skip = {"format", "classes", "temperature", "mean", "std", "layers"}
        layers = [(np.asarray(layer["W"], np.float64), np.asarray(layer["b"], np.float64)) for layer in d["layers"]]
        return cls(mean=np.asarray(d["mean"], np.float64), std=np.asarray(d["std"], np.float64), layers=layers,
                   temperature=float(d["temperature"]), classes=tuple(d["classes"]),
                   meta={k: v for k, v in d.items() if k not in skip})

    def save(self, path: str | Path) -> Path:
        return checkpoint.write_meta(path, self.to_json())


def load(ckpt: str | Path, *, required: bool = True) -> Classifier | None:
    """The classifier shipped beside network checkpoint ``ckpt``, checked against this
    installation's face model and those network weights. With ``required=False`` a
    missing file gives None (a network without a classifier still runs; records then
    carry no emotion); a mismatched one is refused either way."""
    path = path_for(ckpt)
    if not path.exists():
        if required:
            raise EmotionError(f"no emotion classifier at {path}; fit one with "
                               f"`python -m training.emotion --checkpoint {ckpt}` (docs/accuracy.md)")
        return None
    clf = Classifier.from_json(json.loads(path.read_text()))
    if clf.classes != CLASSES:
        raise EmotionError(f"{path}: classes {clf.classes} are not facestream's {CLASSES}")
    try:
        face_model.check(clf.meta.get("face_model") or {}, face_model.load())
    except face_model.FaceModelError as e:
        raise EmotionError(f"{path} was {e}") from None
    want = (clf.meta.get("network") or {}).get("weights_sha256")
    if want != checkpoint.weights_sha256(ckpt):
        raise EmotionError(f"{path} was fitted on the eta of other network weights than {ckpt}; "
                           f"refit it with `python -m training.emotion --checkpoint {ckpt}`")
    return clf
