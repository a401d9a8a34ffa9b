"""An emotion branch: the trunk's last blocks, copied and fine-tuned on FER2013, with a classifier.

The classifier over eta (workers/emotion.py) can only know what the 29 expression
coefficients encode, and eta is trained to match a teacher's blendshapes, not human
emotion labels: on FER2013 it stops near 0.57. A network trained for emotion reads more
than a face's geometry (the brows' texture, a frown's shading). Fine-tuning the whole
trunk for emotion would move every other output too (pose, eta, identity, the presence
probe that reads the embedding), so the branch shares the trunk up to ``split`` and runs
its own copy of the blocks after it, started from the shipped weights and fine-tuned
end to end on FER2013's training faces (training/emotion_branch.py). Everything the
network read before stays bit for bit; the branch adds the cost of its blocks (at 8x8
and 4x4 cells, the cheapest part of the trunk).

Its batch norms keep the trunk's statistics (frozen in training): FER2013's faces are
grey and contrast-normalised, the service's are not, and statistics learnt on the former
would shift every feature on the latter.

The branch ships beside the network as ``NAME.emotion-branch.safetensors`` (its tensors,
the calibrating temperature folded into the classifier, so its logits are calibrated as
they come) and ``NAME.emotion-branch.json`` (the split, the network weights it was trained
on, how it was trained and measured). It only means something on the trunk it shares, so
loading refuses a branch trained beside other weights. A network without one reads its
emotion from eta (workers/emotion.py).
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from workers import checkpoint
from workers.mobilenet import BLOCKS

CLASSES = 7
FORMAT = "facestream-emotion-branch/1"
KIND = "emotion-branch"


class EmotionBranchError(checkpoint.CheckpointError):
    """An emotion branch is damaged or was trained beside other network weights."""


class EmotionBranch(nn.Module):
    """Blocks ``split..`` of an mb05 trunk (copies), global pooling, one linear classifier."""

    def __init__(self, trunk: nn.Sequential, split: int, classes: int = CLASSES) -> None:
        super().__init__()
        if not 0 < split < len(trunk):
            raise ValueError(f"split must fall inside the trunk's {len(trunk)} blocks, got {split}")
        self.split = split
        self.blocks = copy.deepcopy(trunk[split:])
        width = BLOCKS[-1][2]
        self.classifier = nn.Linear(width, classes)

    def forward(self, shared: torch.Tensor) -> torch.Tensor:
        """Emotion logits (N, 7) from the trunk's features after block ``split``."""
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.blocks(shared), 1), 1))


def paths(ckpt: str | Path) -> tuple[Path, Path]:
    """(tensors, description) of the branch beside network checkpoint ``ckpt``."""
    js = checkpoint.sidecar_path(ckpt, KIND)
    return js.with_suffix(".safetensors"), js


def save(branch: EmotionBranch, ckpt: str | Path, temperature: float, meta: dict) -> Path:
    """Write ``branch`` beside ``ckpt`` with ``temperature`` folded into its classifier
    (logits / T is a linear layer with weights / T), tied to the network's weights."""
    st, js = paths(ckpt)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in branch.state_dict().items()}
    tensors["classifier.weight"] /= temperature
    tensors["classifier.bias"] /= temperature
    save_file(tensors, str(st) + ".tmp", metadata={"format": FORMAT})
    os.replace(str(st) + ".tmp", st)
    return checkpoint.write_meta(js, {**meta, "format": FORMAT, "split": branch.split,
                                      "temperature_folded": temperature,
                                      "network": {**(meta.get("network") or {}),
                                                  "weights_sha256": checkpoint.weights_sha256(ckpt)}})


def load(ckpt: str | Path, trunk: nn.Sequential) -> EmotionBranch | None:
    """The branch beside ``ckpt`` for the network whose ``trunk`` it shares, or None where
    none ships. One trained beside other weights, or damaged, is refused."""
    st, js = paths(ckpt)
    if not js.exists():
        return None
    try:
        meta = json.loads(js.read_text())
    except ValueError as e:
        raise EmotionBranchError(f"{js} is not valid JSON ({e})") from None
    if meta.get("format") != FORMAT:
        raise EmotionBranchError(f"{js}: unknown emotion branch format {meta.get('format')!r}")
    if (meta.get("network") or {}).get("weights_sha256") != checkpoint.weights_sha256(ckpt):
        raise EmotionBranchError(f"{js} was trained beside other network weights than {ckpt}; train it again "
                                 f"with `python -m training.emotion_branch --checkpoint {ckpt} --export`")
    if not st.exists():
        raise EmotionBranchError(f"{js} has no tensors beside it ({st.name})")
    branch = EmotionBranch(trunk, int(meta["split"]))
    try:
        branch.load_state_dict(load_file(str(st)))
    except (RuntimeError, OSError) as e:
        raise EmotionBranchError(f"{st} does not fit the branch its JSON describes: {e}") from None
    return branch.eval()
