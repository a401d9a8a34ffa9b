"""Face presence: does a crop frame a face the way a detector's box would?

Track-driven detection places each tracked face's next crop from what the regressor said
about it, and runs the detector only now and then. That is safe only while the crop still
frames the face; when the face leaves, turns away behind something or the placement
drifts, the crop must be noticed as empty and the detector asked at once. The regressor
itself cannot say so (it fits a face to anything), so a probe reads its embedding, the
features every head reads, and gives the probability that the crop is well framed: a
logistic regression, a few kilobytes, a dot product per face.

It lives in ``NAME.presence.json`` beside the network's ``NAME.safetensors`` and only
means something for the weights it was fitted on, so loading refuses other weights.
Fitting and its held-out numbers: ``python -m training.presence``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workers import checkpoint

FORMAT = "facestream-presence/1"


class PresenceError(checkpoint.CheckpointError):
    """A presence probe is damaged or made for other network weights (a checkpoint error:
    the network and what ships beside it are used together)."""


def path_for(ckpt: str | Path) -> Path:
    """Where the probe of a network checkpoint lives: ``NAME.presence.json`` beside it."""
    return checkpoint.sidecar_path(ckpt, "presence")


@dataclass
class Probe:
    """p = sigmoid(w . (e - mean) / std + b) over the network's embedding e."""

    mean: np.ndarray        # (D,)
    std: np.ndarray         # (D,)
    w: np.ndarray           # (D,)
    b: float
    threshold: float = 0.5  # below it a tracked crop is treated as lost
    meta: dict = field(default_factory=dict)

    def probs(self, embedding: np.ndarray) -> np.ndarray:
        """(N, D) embeddings -> (N,) probabilities that each crop frames a face (float32)."""
        z = (np.asarray(embedding, np.float64) - self.mean) / self.std @ self.w + self.b
        return (0.5 * (1 + np.tanh(0.5 * z))).astype(np.float32)   # a sigmoid that cannot overflow

    def to_json(self) -> dict:
        return {"format": FORMAT, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "w": self.w.tolist(), "b": float(self.b), "threshold": float(self.threshold), **self.meta}

    @classmethod
    def from_json(cls, d: dict) -> "Probe":
        if d.get("format") != FORMAT:
            raise PresenceError(f"unknown presence probe format {d.get('format')!r}")
        own = {"format", "mean", "std", "w", "b", "threshold"}
        return cls(mean=np.asarray(d["mean"], np.float64), std=np.asarray(d["std"], np.float64),
                   w=np.asarray(d["w"], np.float64), b=float(d["b"]), threshold=float(d["threshold"]),
                   meta={k: v for k, v in d.items() if k not in own})

    def save(self, path: str | Path) -> Path:
        return checkpoint.write_meta(path, self.to_json())


def load(ckpt: str | Path) -> Probe | None:
    """The probe beside network checkpoint ``ckpt``, or None where there is none (the
    network still runs; track-driven detection then falls back to detecting every frame).
    A probe fitted on other weights is refused."""
    path = path_for(ckpt)
    if not path.exists():
        return None
    probe = Probe.from_json(json.loads(path.read_text()))
    if (probe.meta.get("network") or {}).get("weights_sha256") != checkpoint.weights_sha256(ckpt):
        raise PresenceError(f"{path} was fitted on other network weights than {ckpt}; refit it with "
                            f"`python -m training.presence --checkpoint {ckpt}`")
    return probe
