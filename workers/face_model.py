"""The facestream face model: a linear 3DMM derived from ICT-FaceKit.

    S' = mean + S·alpha + E·eta      (vertices, N×3, centimetres)

alpha has exactly 99 identity components, eta exactly 29 expression components, as in
ExpNet. The source (``../shared/data/face-model/ict_facekit.npz``, MIT) gives 100
orthogonal identity modes (each one standard deviation) and 53 ARKit-named blendshapes.

Identity: the source's 100 modes are orthogonal principal directions (one s.d. each) over
its whole mesh; restricted to the vertices kept here they are re-orthogonalised by an SVD
(same distribution) and the 99 strongest kept, so alpha ~ N(0, I) is the prior.

Expression: the 53 blendshape deltas B (53×3N) are compressed by PCA without centring, so
that eta = 0 is the neutral face. With the eigen-decomposition G = B_w B_wᵀ = U Λ Uᵀ over
the skin vertices (face, head, neck), E_k = U_kᵀ B / √53. For blendshape weights w the
expression coefficients are eta = √53 · U₂₉ᵀ w; back, w is the bounded (0..1) least-squares
solution (``blendshapes_from_eta``).
The map is orthonormal up to that factor, so a single full blendshape gives |eta| ≤ √53
(jawOpen: 7.3) and everyday expressions a norm of 1–4. 29 components keep 99.3% of the
blendshape energy over the skin (see ``explained`` in the file).

The derived file is deterministic (float64 maths, fixed eigenvector signs) and its
SHA-256 over the stored arrays travels in every checkpoint and output file.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

VERSION = "ict99x29-v1"
N_ID = 99
N_EXP = 29
N_BLEND = 53

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "face-model" / "ict_facekit.npz"
DEFAULT_CACHE = REPO_ROOT / ".cache" / "face_model" / f"{VERSION}.npz"

# Vertex blocks kept in the derived model: skin (face, head, neck), teeth, eyeballs.
# Everything else in the source (mouth socket, gums, lacrimal and lash meshes) is not
# needed to render or regress a face and would only triple the file.
_SKIN = (0, 11248)
_TEETH = (17039, 21451)
_EYES = (21451, 24591)


def source_path() -> Path:
    """Where the ICT-FaceKit source lies; FACESTREAM_FACE_MODEL_SRC overrides."""
    return Path(os.environ.get("FACESTREAM_FACE_MODEL_SRC", DEFAULT_SOURCE))


@dataclass(frozen=True)
class FaceModel:
    """The derived linear model; arrays are float32, vertices in centimetres."""

    mean: np.ndarray            # (N, 3)
    identity: np.ndarray        # (99, N, 3)  one s.d. per mode, alpha ~ N(0, 1)
    expression: np.ndarray      # (29, N, 3)
    blend_to_eta: np.ndarray    # (29, 53)    eta = blend_to_eta @ w
    eta_to_blend: np.ndarray    # (53, 29)    pseudo-inverse of blend_to_eta
    blend_names: tuple[str, ...]
    faces: np.ndarray           # (F, 3) triangles over the kept vertices
    face_part: np.ndarray       # (F,) 0 skin, 1 teeth, 2 eyeball
    landmarks68: np.ndarray     # (68,) vertex ids (iBUG 68 order) in the kept vertices
    vertex_source_ids: np.ndarray  # (N,) index of each kept vertex in the source mesh
    explained: np.ndarray       # (29,) cumulative blendshape energy kept
    version: str
    sha256: str

    @property
    def n_vertices(self) -> int:
        return self.mean.shape[0]

    def vertices(self, alpha=None, eta=None) -> np.ndarray:
        """S' = mean + S·alpha + E·eta for one face (alpha (99,), eta (29,))."""
        v = self.mean.astype(np.float32).copy()
        if alpha is not None:
            v += np.tensordot(np.asarray(alpha, np.float32), self.identity, axes=1)
        if eta is not None:
            v += np.tensordot(np.asarray(eta, np.float32), self.expression, axes=1)
        return v

    def eta_from_blendshapes(self, w) -> np.ndarray:
        return np.asarray(w, np.float32) @ self.blend_to_eta.T

    def blendshapes_from_eta(self, eta, iterations: int = 150) -> np.ndarray:
        """The 53 ARKit-named weights in [0, 1] whose eta is closest to the given one.

        29 numbers cannot pin down 53, so the bounds decide: projected-gradient (FISTA)
        least squares under 0 <= w <= 1, batched over any leading axes. Plain
        pseudo-inverse + clip spreads weight over opposite shapes; the bounded solution
        is sparse like real blendshape rigs (correlation with the true mix 0.97 vs 0.78).
        """
        eta = np.asarray(eta, np.float64)
        M = self.blend_to_eta.astype(np.float64)
        step = 1.0 / np.linalg.norm(M, 2) ** 2
        w = np.clip(eta @ self.eta_to_blend.T.astype(np.float64), 0.0, 1.0)
        y, t = w.copy(), 1.0
        for _ in range(iterations):
            w_next = np.clip(y - step * ((y @ M.T - eta) @ M), 0.0, 1.0)
            t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
            y = w_next + (t - 1) / t_next * (w_next - w)
            w, t = w_next, t_next
        return w.astype(np.float32)


def _hash(arrays: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def derive(src: Path | None = None) -> dict:
    """Derive the 99/29 model arrays from the ICT-FaceKit source (deterministic)."""
    d = np.load(src or source_path())
    keep = np.concatenate([np.arange(*_SKIN), np.arange(*_TEETH), np.arange(*_EYES)])
    remap = -np.ones(d["neutral"].shape[0], np.int64)
    remap[keep] = np.arange(keep.size)

    faces_src = d["faces"]
    ok = (remap[faces_src] >= 0).all(axis=1)
    faces = remap[faces_src[ok]].astype(np.int32)
    first = faces_src[ok][:, 0]
    part = np.where(first < _SKIN[1], 0, np.where(first < _TEETH[1], 1, 2)).astype(np.int8)

    # The source modes are orthogonal over the whole mesh but not over the kept vertices;
    # an SVD of all 100 restricted modes gives orthogonal directions with the same
    # distribution (alpha ~ N(0, I)), of which the 99 strongest are kept.
    ids = d["identity"][:, keep].reshape(100, -1).astype(np.float64)
    _, sv, vt = np.linalg.svd(ids, full_matrices=False)
    vt = vt * np.sign(vt[np.arange(100), np.abs(vt).argmax(axis=1)])[:, None]
    identity = (sv[:N_ID, None] * vt[:N_ID]).reshape(N_ID, -1, 3).astype(np.float32)

    B = d["expression"].reshape(N_BLEND, -1, 3).astype(np.float64)
    skin = B[:, _SKIN[0]:_SKIN[1]].reshape(N_BLEND, -1)
    lam, U = np.linalg.eigh(skin @ skin.T)
    order = np.argsort(lam)[::-1]
    lam, U = lam[order], U[:, order]
    # Fix each eigenvector's sign: its largest-magnitude entry is positive.
    signs = np.sign(U[np.abs(U).argmax(axis=0), np.arange(N_BLEND)])
    U = U * signs
    U29 = U[:, :N_EXP]
    expression = np.tensordot(U29.T, B[:, keep], axes=1) / np.sqrt(N_BLEND)

    names = [str(n) for n in d["expression_names"]]
    arrays = {
        "mean": d["neutral"][keep].astype(np.float32),
        "identity": identity,
        "expression": expression.astype(np.float32),
        "blend_to_eta": (np.sqrt(N_BLEND) * U29.T).astype(np.float32),
        "eta_to_blend": (U29 / np.sqrt(N_BLEND)).astype(np.float32),
        "blend_names": np.array(names),
        "faces": faces,
        "face_part": part,
        "landmarks68": remap[d["landmarks68"]].astype(np.int32),
        "vertex_source_ids": keep.astype(np.int32),
        "explained": (np.cumsum(lam) / lam.sum())[:N_EXP].astype(np.float32),
    }
    return arrays


def build(out: Path | None = None, src: Path | None = None) -> Path:
    """Write the derived model (``facestream face-model`` calls this); returns the path."""
    out = Path(out or DEFAULT_CACHE)
    arrays = derive(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, version=np.array(VERSION), sha256=np.array(_hash(arrays)), **arrays)
    os.replace(tmp, out)
    return out


@lru_cache(maxsize=2)
def load(path: str | None = None) -> FaceModel:
    """Load the derived model, deriving it first if the cache is missing."""
    p = Path(path) if path else DEFAULT_CACHE
    if not p.exists():
        build(p)
    d = np.load(p)
    arrays = {k: d[k] for k in d.files if k not in ("version", "sha256")}
    digest = _hash(arrays)
    if digest != str(d["sha256"]):
        raise ValueError(f"face model {p} is corrupt: hash {digest[:12]} != {str(d['sha256'])[:12]}")
    return FaceModel(
        mean=arrays["mean"], identity=arrays["identity"], expression=arrays["expression"],
        blend_to_eta=arrays["blend_to_eta"], eta_to_blend=arrays["eta_to_blend"],
        blend_names=tuple(str(n) for n in arrays["blend_names"]), faces=arrays["faces"],
        face_part=arrays["face_part"], landmarks68=arrays["landmarks68"],
        vertex_source_ids=arrays["vertex_source_ids"], explained=arrays["explained"],
        version=str(d["version"]), sha256=digest,
    )
