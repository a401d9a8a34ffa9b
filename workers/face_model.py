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

Identity (what checkpoints and outputs carry as ``face_model.sha256``) is a SHA-256 of the
derivation's version and the source file's bytes, never of the derived floats: the SVD and
eigendecomposition come out different in their last bits with the BLAS kernel and thread
count, so a byte hash of the result named the same model differently on every CPU. What
the floats must still agree on -- each component's sign and order -- is pinned by rules
with a wide margin (``SIGN_ANCHORS``, ``ORDER_GAP``) that the derivation checks, failing
loudly rather than picking; and a fingerprint of the derived arrays (their projections on a
few fixed probe vectors, compared with a tolerance far above float noise and far below any
real change) travels in every checkpoint, so a model whose components differ in sign,
order or count is refused even under the same version (``check``).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
from numpy.lib.npyio import NpzFile
from numpy.typing import ArrayLike

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

# Sign rule. An eigenvector's sign is arbitrary; each component is oriented so that one
# named coordinate moves positively. Identity mode k: (source vertex id, axis 0/1/2 = x/y/z);
# expression component k: the blendshape whose weight it raises. These are the coordinates
# that each component moves most (the rule the first derivation used, frozen here), so the
# anchored entry is far from zero: its sign cannot flip with rounding, whereas "the
# largest-magnitude entry is positive" depended on which of two entries of near-equal size
# and opposite sign won (gaps down to 4e-6 relative). The derivation refuses to pick when
# an anchor has lost its meaning (its entry below SIGN_MARGIN of the component's largest).
ID_SIGN_ANCHORS = (
    (10955, 2), (10967, 2), (10655, 1), (10957, 1), (10946, 2), (10957, 2), (10678, 2), (10957, 2), (10967, 0),
    (10957, 1), (10962, 1), (9441, 2), (10750, 1), (10270, 2), (10678, 2), (10957, 2), (11008, 0), (11069, 2),
    (11247, 1), (10703, 1), (10957, 1), (10965, 1), (10655, 1), (7125, 0), (9522, 0), (10957, 1), (11064, 1),
    (11044, 2), (9504, 2), (10957, 2), (10657, 1), (11067, 1), (10957, 1), (10967, 2), (10760, 1), (11220, 0),
    (10683, 1), (10957, 2), (10957, 1), (7127, 0), (10957, 2), (7590, 2), (10983, 2), (7057, 0), (11189, 2),
    (10781, 2), (10755, 2), (11240, 1), (11067, 1), (9051, 2), (10955, 0), (10948, 2), (10750, 2), (1594, 2),
    (10957, 2), (10957, 2), (10982, 2), (10957, 1), (10657, 2), (11008, 0), (10967, 2), (11240, 2), (10957, 1),
    (10780, 2), (10683, 1), (10957, 2), (10957, 2), (7620, 2), (8957, 2), (10779, 2), (10693, 1), (10957, 2),
    (10747, 2), (10962, 0), (9028, 2), (11246, 2), (10955, 1), (9461, 2), (10760, 1), (10962, 1), (10949, 0),
    (10850, 2), (10750, 1), (10962, 1), (960, 1), (11064, 2), (7237, 2), (10957, 2), (10657, 2), (10982, 2),
    (10703, 2), (10657, 1), (10757, 1), (9442, 2), (10988, 1), (10749, 0), (10726, 1), (10965, 1), (10135, 1),
)
EXP_SIGN_ANCHORS = (
    "jawOpen", "mouthRight", "mouthPucker", "mouthClose", "noseSneer_L", "cheekPuff_R",
    "noseSneer_R", "mouthLeft", "mouthRollUpper", "jawRight", "jawForward", "browOuterUp_L",
    "browOuterUp_R", "mouthShrugUpper", "cheekPuff_R", "mouthRollLower", "eyeBlink_L", "eyeBlink_L",
    "mouthRollUpper", "cheekSquint_L", "mouthShrugLower", "cheekSquint_L", "cheekSquint_R", "mouthShrugUpper",
    "mouthDimple_R", "browDown_L", "mouthShrugLower", "browDown_R", "eyeLookIn_L",
)
SIGN_MARGIN = 0.5
# Order rule: components sorted by energy, decreasing. Two energies closer than ORDER_GAP
# (relative) would make the order, and the components themselves, a matter of rounding;
# the closest pair in ICT-FaceKit is 1.5e-4 apart, the rounding noise about 1e-8.
ORDER_GAP = 1e-5

# Fingerprint: each component's projection on a few fixed probe vectors. Rounding moves
# it by ~1e-8 of its size, a sign flip by 2x, a reorder or another source by O(1).
FINGERPRINT_PROBES = 3
FINGERPRINT_RTOL = 1e-4
_FINGERPRINTED = ("mean", "identity", "expression", "blend_to_eta")


class FaceModelError(ValueError):
    """The face model cannot be derived unambiguously, is corrupt, or is not the one asked for."""


def source_path() -> Path:
    """Where the ICT-FaceKit source lies; FACESTREAM_FACE_MODEL_SRC overrides."""
    return Path(os.environ.get("FACESTREAM_FACE_MODEL_SRC", DEFAULT_SOURCE))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def identity_of(source_sha256: str, version: str = VERSION) -> str:
    """The model's identity: which source, which derivation, how many components."""
    text = f"facestream face model\n{version}\n{N_ID} {N_EXP} {N_BLEND}\n{source_sha256}\n"
    return hashlib.sha256(text.encode()).hexdigest()


def _probes(n: int) -> np.ndarray:
    """(FINGERPRINT_PROBES, n) fixed pseudo-random directions, from a closed form (no RNG
    stream whose definition could change between numpy releases)."""
    i = np.arange(n, dtype=np.float64)
    golden = np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([np.cos(golden * (p + 1) * i + (p + 1)) for p in range(FINGERPRINT_PROBES)])


def fingerprint(arrays: dict) -> dict[str, np.ndarray]:
    """Per array, (components, FINGERPRINT_PROBES): what a checkpoint keeps of the model."""
    out = {}
    for k in _FINGERPRINTED:
        a = np.asarray(arrays[k], np.float64)
        a = a.reshape(1, -1) if k == "mean" else a.reshape(a.shape[0], -1)
        out[k] = a @ _probes(a.shape[1]).T
    return out


def fingerprint_mismatch(want: dict, have: dict) -> str | None:
    """Why two fingerprints name different models (None when they agree within tolerance)."""
    for k in _FINGERPRINTED:
        if k not in want:
            return f"its fingerprint lacks {k!r}"
        w, h = np.asarray(want[k], np.float64), np.asarray(have[k], np.float64)
        if w.shape != h.shape:
            return f"{k} has {w.shape[0]} components there and {h.shape[0]} here"
        err = np.linalg.norm(w - h, axis=1)
        bad = np.flatnonzero(err > FINGERPRINT_RTOL * np.linalg.norm(h, axis=1))
        if bad.size:
            j = int(bad[0])
            flipped = np.linalg.norm(w[j] + h[j]) <= FINGERPRINT_RTOL * np.linalg.norm(h[j])
            how = "has the opposite sign" if flipped else "differs"
            return f"{k} component {j} {how} ({bad.size} of {h.shape[0]} components differ)"
    return None


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
    sha256: str                 # identity_of(source file): the same on every machine
    fingerprint: dict           # fingerprint(arrays): checked with a tolerance

    @classmethod
    def from_arrays(cls, arrays: dict, version: str, sha256: str) -> "FaceModel":
        return cls(
            mean=arrays["mean"], identity=arrays["identity"], expression=arrays["expression"],
            blend_to_eta=arrays["blend_to_eta"], eta_to_blend=arrays["eta_to_blend"],
            blend_names=tuple(str(n) for n in arrays["blend_names"]), faces=arrays["faces"],
            face_part=arrays["face_part"], landmarks68=arrays["landmarks68"],
            vertex_source_ids=arrays["vertex_source_ids"], explained=arrays["explained"],
            version=version, sha256=sha256, fingerprint=fingerprint(arrays),
        )

    @property
    def n_vertices(self) -> int:
        return self.mean.shape[0]

    def meta(self) -> dict:
        """What a checkpoint records of the model it was trained for."""
        return {"version": self.version, "sha256": self.sha256,
                "fingerprint": {k: [[float(f"{x:.9g}") for x in row] for row in v]
                                for k, v in self.fingerprint.items()}}

    def vertices(self, alpha: ArrayLike | None = None, eta: ArrayLike | None = None) -> np.ndarray:
        """S' = mean + S·alpha + E·eta for one face (alpha (99,), eta (29,))."""
        v = self.mean.astype(np.float32).copy()
        if alpha is not None:
            v += np.tensordot(np.asarray(alpha, np.float32), self.identity, axes=1)
        if eta is not None:
            v += np.tensordot(np.asarray(eta, np.float32), self.expression, axes=1)
        return v

    def eta_from_blendshapes(self, w: ArrayLike) -> np.ndarray:
        return np.asarray(w, np.float32) @ self.blend_to_eta.T

    def blendshapes_from_eta(self, eta: ArrayLike, iterations: int = 150) -> np.ndarray:
        """The 53 ARKit-named weights in [0, 1] whose eta is closest to the given one.

        29 numbers cannot pin down 53, so the bounds decide: projected-gradient (FISTA)
        least squares under 0 <= w <= 1, batched over any leading axes. Plain
        pseudo-inverse + clip spreads weight over opposite shapes; the bounded solution
        is sparse like real blendshape rigs (correlation with the true mix 0.97 vs 0.78).
        """
        return self._blend_solver.solve(eta, iterations)

    @cached_property
    def _blend_solver(self) -> "_BoundedBlendshapes":
        return _BoundedBlendshapes(self.blend_to_eta, self.eta_to_blend)


class _BoundedBlendshapes:
    """FISTA for min |w Mᵀ - eta|² under 0 <= w <= 1, with all that does not depend on eta
    computed once: a live stream solves it for every record, one face at a time, where
    the per-call numpy overhead is the cost (0.42 ms a record instead of 1.0 ms).

    A gradient step is y - s (y MᵀM - eta M)ᵀ = y A + c with A = I - s MᵀM and c = s eta M;
    the momentum weights (t - 1) / t' do not depend on the data either.
    """

    def __init__(self, blend_to_eta: np.ndarray, eta_to_blend: np.ndarray) -> None:
        self._M = blend_to_eta.astype(np.float64)
        self._step = 1.0 / np.linalg.norm(self._M, 2) ** 2
        self._A = np.eye(self._M.shape[1]) - self._step * (self._M.T @ self._M)
        self._start = eta_to_blend.T.astype(np.float64)
        self._momenta: dict[int, list[float]] = {}

    def momenta(self, iterations: int) -> list[float]:
        if iterations not in self._momenta:
            momenta, t = [], 1.0
            for _ in range(iterations):
                t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
                momenta.append(float((t - 1) / t_next))
                t = t_next
            self._momenta[iterations] = momenta
        return self._momenta[iterations]

    def solve(self, eta: ArrayLike, iterations: int) -> np.ndarray:
        eta = np.asarray(eta, np.float64)
        c = self._step * (eta @ self._M)
        w = np.clip(eta @ self._start, 0.0, 1.0)
        y, w_next, change = w.copy(), np.empty_like(w), np.empty_like(w)
        for k in self.momenta(iterations):
            np.dot(y, self._A, out=w_next)
            w_next += c
            np.maximum(w_next, 0.0, out=w_next)
            np.minimum(w_next, 1.0, out=w_next)
            np.subtract(w_next, w, out=change)
            change *= k
            np.add(w_next, change, out=y)
            w, w_next = w_next, w
        return w.astype(np.float32)


def check(want: dict, have: FaceModel) -> None:
    """Refuse coefficients meant for another face model (``want``: a checkpoint's
    ``face_model`` record). Raises FaceModelError saying what differs.

    Checkpoints written before the identity was made machine-independent carry a byte
    hash and no fingerprint; their derivation is this one (same source, and the signs
    SIGN_ANCHORS freeze), so the version decides for them. ``facestream face-model
    --migrate`` brings their record up to date."""
    version, sha = want.get("version", "?"), str(want.get("sha256", "?"))
    if "fingerprint" not in want:
        if version == have.version:
            return
        why = ""
    elif sha != have.sha256:
        why = " (another source or derivation)"
    else:
        reason = fingerprint_mismatch(want["fingerprint"], have.fingerprint)
        if reason is None:
            return
        why = f" (same identity, but {reason})"
    raise FaceModelError(
        f"trained for face model {version} ({sha[:12]}), but this installation has "
        f"{have.version} ({have.sha256[:12]}){why}; use a checkpoint trained for this face model, "
        f"or point FACESTREAM_FACE_MODEL_SRC at the source it was trained with")


def _checksum(arrays: dict) -> str:
    """Byte hash of a written file's arrays: detects a damaged cache on the machine that
    wrote it (not an identity: other machines write other bytes)."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode())
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def orient(components: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Signs (±1) that make each component's anchored entry positive; refuse when an
    anchored entry is under SIGN_MARGIN of the component's largest (the rule no longer
    decides with a margin: the source or the derivation changed)."""
    idx = np.arange(len(components))
    at = components[idx, anchors]
    ratio = np.abs(at) / np.abs(components).max(axis=1)
    weak = np.flatnonzero(ratio < SIGN_MARGIN)
    if weak.size:
        raise FaceModelError(
            f"sign rule has no margin for components {weak.tolist()} "
            f"(anchored entry {ratio[weak].min():.3f} of the largest, need {SIGN_MARGIN})")
    return np.sign(at)


def check_order(energies: np.ndarray, keep: int, what: str) -> None:
    """Energies must decrease with a margin over the kept components and at the cut."""
    e = np.asarray(energies, np.float64)[: keep + 1]
    gap = (e[:-1] - e[1:]) / np.abs(e[:-1])
    tied = np.flatnonzero(gap < ORDER_GAP)
    if tied.size:
        raise FaceModelError(
            f"{what} components {tied.tolist()} and the next have energies within "
            f"{gap[tied].min():.1e} (need {ORDER_GAP:.0e}): their order would be a matter of rounding")


def derive(src: Path | None = None) -> dict:
    """Derive the 99/29 model arrays from the ICT-FaceKit source (deterministic up to
    float rounding; signs and order checked with a margin)."""
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
    check_order(sv, N_ID, "identity")
    vt = vt[:N_ID]
    anchors = np.array([remap[v] * 3 + axis for v, axis in ID_SIGN_ANCHORS])
    if (anchors < 0).any():
        raise FaceModelError("an identity sign anchor lies outside the kept vertices")
    vt = vt * orient(vt, anchors)[:, None]
    identity = (sv[:N_ID, None] * vt).reshape(N_ID, -1, 3).astype(np.float32)

    B = d["expression"].reshape(N_BLEND, -1, 3).astype(np.float64)
    skin = B[:, _SKIN[0]:_SKIN[1]].reshape(N_BLEND, -1)
    lam, U = np.linalg.eigh(skin @ skin.T)
    order = np.argsort(lam)[::-1]
    lam, U = lam[order], U[:, order]
    check_order(lam, N_EXP, "expression")
    names = [str(n) for n in d["expression_names"]]
    U29 = U[:, :N_EXP]
    U29 = U29 * orient(U29.T, np.array([names.index(n) for n in EXP_SIGN_ANCHORS]))
    expression = np.tensordot(U29.T, B[:, keep], axes=1) / np.sqrt(N_BLEND)

    return {
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


_HEADER = ("version", "model_id", "checksum")


def build(out: Path | None = None, src: Path | None = None) -> Path:
    """Write the derived model (``facestream face-model`` calls this); returns the path."""
    out = Path(out or DEFAULT_CACHE)
    src = Path(src or source_path())
    arrays = derive(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, version=np.array(VERSION), model_id=np.array(identity_of(file_sha256(src))),
             checksum=np.array(_checksum(arrays)), **arrays)
    os.replace(tmp, out)
    return out


def _stale(d: NpzFile, src: Path) -> bool:
    """A cache from an older layout, another derivation or another source file."""
    if any(k not in d.files for k in _HEADER) or str(d["version"]) != VERSION:
        return True
    return src.exists() and str(d["model_id"]) != identity_of(file_sha256(src))


@lru_cache(maxsize=2)
def load(path: str | None = None) -> FaceModel:
    """Load the derived model, deriving it first if the cache is missing or stale."""
    p = Path(path) if path else DEFAULT_CACHE
    if not p.exists() or _stale(np.load(p), source_path()):
        build(p)
    d = np.load(p)
    arrays = {k: d[k] for k in d.files if k not in _HEADER}
    digest = _checksum(arrays)
    if digest != str(d["checksum"]):
        raise FaceModelError(f"face model {p} is corrupt: checksum {digest[:12]} != {str(d['checksum'])[:12]}; "
                             f"delete it (it is derived again on next use)")
    return FaceModel.from_arrays(arrays, str(d["version"]), str(d["model_id"]))
