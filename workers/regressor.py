"""Inference: crops in, face-model coefficients and pose out.

Wraps a checkpoint's network with the post-processing that turns raw head outputs into
what users read: eta (29), AFLW yaw/pitch/roll and a quaternion, the face centre in crop
pixels plus pixels-per-centimetre scale, identity alpha (99) and 68 landmarks; averaged
over the crop and its mirror image when the checkpoint asks for it (workers/mirror.py). Runs in
fp32 on CPU (batch norm folded into the convolutions, then exported to ONNX Runtime:
workers/onnx_network.py) and bf16 + channels_last on CUDA.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from workers import checkpoint, face_quality
from workers.crops import CropRule
from workers.emotion_labels import EmotionSource
from workers.mirror import MirrorAveraged, for_inference
from workers.onnx_network import OnnxNetwork, for_cpu
from workers.pose import eulers_from_matrices, matrix_from_6d, quaternions_from_matrices
from workers.prediction import Prediction  # defined torch-free, so that sessions need no torch
from workers.runtime import Runtime

if TYPE_CHECKING:
    from workers.emotion import Classifier
    from workers.presence import Probe

# log-scale head output is relative to this many crop pixels per centimetre at 128 px
SCALE_REF = 4.0


def decode(out: dict[str, torch.Tensor], size: int) -> Prediction:
    """Turn raw head outputs into a Prediction (shared by inference and evaluation)."""
    R = matrix_from_6d(out["rot6d"].float()).cpu().numpy().astype(np.float64)
    trans = out["trans"].float().cpu().numpy()
    half = size / 2.0
    return Prediction(
        expression=out["expression"].float().cpu().numpy(),
        rotation=R,
        euler=eulers_from_matrices(R),
        quaternion=quaternions_from_matrices(R),
        centre=(trans[:, :2] + 1.0) * half,
        scale=np.exp(trans[:, 2]) * SCALE_REF * size / 128.0,
        shape=out["shape"].float().cpu().numpy(),
        landmarks=(out["landmarks"].float().cpu().numpy().reshape(-1, 68, 2) + 1.0) * half,
    )


def _folded(model: torch.nn.Module) -> torch.nn.Module:
    """The eval-mode network with each batch norm folded into the convolution before it.

    Same function (outputs within 1e-6), half the operators: on CPU at the batch sizes
    live streams bring (1-8 crops) the per-operator overhead is most of the time, and
    folding plus channels-last memory runs the shipped network about a third faster
    (``bench/replica_batching.py``). A network that torch.fx cannot trace runs unfolded.
    """
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model)
    except Exception:
        return model


class Regressor:
    """A loaded checkpoint ready to run on batches of normalised crops."""

    def __init__(self, model: torch.nn.Module, meta: dict, device: str = "auto",
                 emotion: Classifier | None = None, presence: Probe | None = None,
                 runtime: Runtime = Runtime.AUTO) -> None:
        self.emotion = emotion
        self.presence = presence
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.meta = meta
        self.size = int(meta["crop"]["size"])
        self.rule = CropRule.from_meta(meta)
        self.half = self.device.type == "cuda"
        model = model.to(self.device).eval()
        if self.device.type == "cpu":
            model = for_cpu(_folded(model), self.size, runtime)
        # torch's convolutions run channels-last; ONNX Runtime takes plain NCHW arrays, so
        # crops for it stay as they are (a conversion there and back would be two copies)
        self._layout = torch.contiguous_format if isinstance(model, OnnxNetwork) else torch.channels_last
        # a CPU runs batches of more than 32 crops slower per crop (workers/mirror.py)
        network = for_inference(model, meta, chunk=None if self.half else 32)
        # Module.to takes memory_format (it converts the 4-D weights); torch's stubs omit it
        self.model = network.to(memory_format=self._layout)  # type: ignore[call-overload]

    @classmethod
    def load(cls, path: str | None = None, device: str = "auto",
             emotion_source: EmotionSource = EmotionSource.BRANCH, runtime: Runtime = Runtime.AUTO) -> "Regressor":
        """The checkpoint at ``path`` (the shipped one by default) with what ships beside
        it; ``emotion_source`` says whether its emotion branch, when it has one, runs;
        ``runtime`` what runs the network on a CPU."""
        from workers import emotion, emotion_branch, presence

        where = path or checkpoint.default_path()
        model, meta = checkpoint.load(where)
        branch = emotion_branch.load(where, model.trunk) if emotion_source is EmotionSource.BRANCH else None
        model.attach_emotion_branch(branch)
        # with a branch, the emotion comes from it; the classifier over eta is not needed
        classifier = None if branch is not None else emotion.load(where, required=False)
        return cls(model, meta, device, classifier, presence.load(where), runtime)

    @property
    def version(self) -> str:
        fm = self.meta.get("face_model", {})
        return f"{self.meta.get('name', 'unnamed')}@{fm.get('version', '?')}:{fm.get('sha256', '')[:12]}"

    @property
    def emotion_source(self) -> EmotionSource:
        """What gives ``emotion_probs``: the emotion branch when one is attached, else the
        classifier over eta (their labels' thresholds differ: EmotionSource.min_prob)."""
        return EmotionSource.ETA if self.emotion is not None else EmotionSource.BRANCH

    @property
    def mirror_averaged(self) -> bool:
        """Whether this checkpoint reads crops mirror-averaged (workers/mirror.py)."""
        return isinstance(self.model, MirrorAveraged)

    @torch.inference_mode()
    def __call__(self, crops: torch.Tensor, mirror: np.ndarray | None = None) -> Prediction:
        """Predictions for normalised crops (N, 3, S, S). ``mirror`` (a bool per crop)
        picks the crops to average with their mirror images, when the checkpoint reads
        mirror-averaged; by default all of them."""
        x = crops.to(self.device, non_blocking=True).contiguous(memory_format=self._layout)
        args = (x,) if mirror is None or not self.mirror_averaged else (x, torch.from_numpy(np.asarray(mirror, bool)))
        if self.half:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = self.model(*args)
        else:
            out = self.model(*args)
        pred = decode(out, self.size)
        if "emotion" in out:             # the emotion branch's logits, calibrated as they come
            pred.emotion_probs = torch.softmax(out["emotion"].float(), 1).cpu().numpy()
        elif self.emotion is not None:   # a few small matrix products: no measurable cost
            pred.emotion_probs = self.emotion.probs(pred.expression)
        if self.presence is not None:    # one dot product per face
            pred.presence = self.presence.probs(out["embedding"].float().cpu().numpy())
        # light and sharpness of each face box, for the emotion label's too_dark / too_blurred
        # (a pooling and a 3x3 convolution on the crops already here)
        pred.luminance, pred.contrast, pred.sharpness = face_quality.measure(x, self.rule)
        return pred
