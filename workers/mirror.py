"""Mirror averaging: the network's outputs for a crop and for its mirror image, averaged.

Every checkpoint is trained with mirror augmentation (training/data.py), so the
network has learnt, up to its errors, that a mirrored face has the mirrored pose,
expression and landmarks. Its errors on a face and on that face's mirror image are not
the same errors, so averaging the two readings, each brought back to the original side,
cancels part of them: on the held-out in-the-wild faces (docs/accuracy.md) pitch and roll
move closer to their labels by about 0.35 degrees, landmarks by a twentieth, and the
expression separates emotions a little better. The cost is a network pass on twice the
crops, in the same batch.

A checkpoint opts in with ``"inference": {"mirror_average": true}`` in its JSON (written
by ``facestream train --export``), so every reader of the weights (predict, analyze, the
service, ``facestream evaluate``, the emotion fit) sees the same numbers.

Mirroring about the crop's vertical centre line maps:

* the rotation R to F·R·F with F = diag(-1, 1, 1) (yaw and roll change sign): on the
  network's 6-D output (R's first two columns c1, c2) that is (-F·c1, F·c2);
* the face centre's x (crop coordinates in [-1, 1]) to -x; the scale not at all;
* the 68 landmarks' x to -x, with left and right points swapped (``MIRROR68``);
* the expression eta to M·eta, M the blendshapes' left/right swap seen in eta's basis.

Identity alpha has no mirror map in coefficients; the original view's is kept, as is its
``embedding`` (what the presence probe reads), so a probe fitted without averaging holds.

Two views that disagree on the rotation by more than ``BLEND_LIMIT_DEG`` are not averaged:
a turned, small or blurred face is sometimes read as its mirror image in one of them
(yaw -50° in one, +50° in the other), and their average (yaw near 0°, with landmarks
between the two) is a face neither view saw. Such a crop keeps its original view's
reading, the one a live camera's one-view reading gives, and the smoother's outlier gate
(streamer.pipeline.outliers) deals with it over time.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

from workers import face_model
from workers.pose import matrix_from_6d

BLEND_LIMIT_DEG = 45.0

# iBUG-68 mirror permutation (subject's right <-> left)
MIRROR68 = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
)


def blend_mirror(names: tuple[str, ...]) -> np.ndarray:
    """Permutation of the 53 blendshapes that swaps _L and _R."""
    idx = {n: i for i, n in enumerate(names)}
    perm = []
    for n in names:
        if n.endswith("_L"):
            perm.append(idx[n[:-2] + "_R"])
        elif n.endswith("_R"):
            perm.append(idx[n[:-2] + "_L"])
        elif n in ("jawLeft", "mouthLeft"):
            perm.append(idx[n.replace("Left", "Right")])
        elif n in ("jawRight", "mouthRight"):
            perm.append(idx[n.replace("Right", "Left")])
        else:
            perm.append(idx[n])
    return np.array(perm)


@lru_cache(maxsize=1)
def eta_mirror() -> np.ndarray:
    """(29, 29) M with M·eta the expression of the mirrored face.

    eta = B·w for blendshape weights w; the mirror swaps w's left and right entries
    (B·P·w), and M = B·P·B⁺ is the least-squares map from eta to that. The PCA basis is
    nearly closed under the swap (the blendshape set is symmetric), so M·M is the
    identity within 1e-3 (tested)."""
    fm = face_model.load()
    B = np.asarray(fm.blend_to_eta, np.float64)
    return B[:, blend_mirror(fm.blend_names)] @ np.linalg.pinv(B)


def _columns(d6: torch.Tensor) -> torch.Tensor:
    """Raw 6-D rotation outputs -> R's first two columns, orthonormalised (Gram-Schmidt,
    as workers.pose.matrix_from_6d), so that both views weigh the same in the average."""
    a1, a2 = d6[:, 0:3], d6[:, 3:6]
    b1 = nn.functional.normalize(a1, dim=-1)
    b2 = nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    return torch.cat([b1, b2], -1)


def rotation_gap_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Geodesic angle (degrees) between rotations given by their 6-D outputs (N, 6), from
    trace(Ra^T Rb)."""
    trace = (matrix_from_6d(a) * matrix_from_6d(b)).sum((-2, -1))
    return torch.rad2deg(torch.arccos(((trace - 1) / 2).clamp(-1.0, 1.0)))


class MirrorAveraged(nn.Module):
    """Wraps a network: the crops and their mirror images in one pass, readings averaged.

    Takes and returns what the network does (NCHW crops -> dict of head outputs), so it
    drops in wherever the network is run. ``mirror`` (a bool per crop) limits the
    averaging to some crops, the others reading one view at one view's cost: the service
    averages files' crops but not a live camera's (``model.mirror_average``). ``chunk``
    caps the crops per network call: on a CPU a batch of 64 costs three times one of 32
    (the activations leave the cache), so two calls of 32 are faster than one of 64.
    """

    eta_mirror_t: torch.Tensor
    rot_signs: torch.Tensor
    lm_perm: torch.Tensor

    def __init__(self, network: nn.Module, chunk: int | None = None) -> None:
        super().__init__()
        self.network = network
        self.chunk = chunk
        self.register_buffer("eta_mirror_t", torch.tensor(eta_mirror().T, dtype=torch.float32))
        # (-F·c1, F·c2) for c1, c2 the first two columns: signs per 6-D entry
        self.register_buffer("rot_signs", torch.tensor([1.0, -1.0, -1.0, -1.0, 1.0, 1.0]))
        self.register_buffer("lm_perm", torch.from_numpy(MIRROR68))

    def forward(self, x: torch.Tensor, mirror: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        n = len(x)
        rows = torch.arange(n, device=x.device) if mirror is None else torch.nonzero(mirror.to(x.device))[:, 0]
        both = self._run(torch.cat([x, x[rows].flip(-1)]))
        out = {k: v[:n].clone() for k, v in both.items()}
        if not len(rows):
            return out
        keys = ("rot6d", "expression", "trans", "landmarks")   # the outputs with a mirror map
        a = {k: out[k][rows] for k in keys}
        b = {k: both[k][n:] for k in keys}
        m = len(rows)
        rot_a, rot_b = _columns(a["rot6d"]), _columns(b["rot6d"]) * self.rot_signs
        a["rot6d"] = (rot_a + rot_b) / 2
        a["expression"] = (a["expression"] + b["expression"] @ self.eta_mirror_t.to(b["expression"].dtype)) / 2
        trans = b["trans"].clone()
        trans[:, 0] = -trans[:, 0]
        a["trans"] = (a["trans"] + trans) / 2
        lm = b["landmarks"].reshape(m, 68, 2)[:, self.lm_perm]
        a["landmarks"] = (a["landmarks"] + torch.stack([-lm[..., 0], lm[..., 1]], -1).reshape(m, -1)) / 2
        blend = rotation_gap_deg(rot_a.float(), rot_b.float()) <= BLEND_LIMIT_DEG   # else: the original view
        for key in keys:
            out[key][rows[blend]] = a[key][blend].to(out[key].dtype)
        if "emotion" in out:   # an emotion branch's logits: a mirrored face shows the same emotion
            out["emotion"][rows] = (out["emotion"][rows] + both["emotion"][n:]) / 2
        return out

    def _run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.chunk is None or len(x) <= self.chunk:
            return self.network(x)
        parts = [self.network(part) for part in torch.split(x, self.chunk)]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def asks_for_it(meta: dict) -> bool:
    """Whether a checkpoint's JSON asks for mirror averaging (``inference.mirror_average``)."""
    return bool((meta.get("inference") or {}).get("mirror_average"))


def for_inference(network: nn.Module, meta: dict, chunk: int | None = None) -> nn.Module:
    """The network as the checkpoint says it is to be run: mirror-averaged when its JSON
    asks for it, else as it is."""
    return MirrorAveraged(network, chunk) if asks_for_it(meta) else network
