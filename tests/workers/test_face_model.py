"""The derived face model: exact sizes, orthogonality, the eta <-> blendshape map, and an
identity that is the same on every machine while real changes are refused."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from workers import face_model


@pytest.fixture(scope="module")
def fm():
    return face_model.load()


def test_exact_component_counts(fm):
    assert fm.identity.shape == (99, fm.n_vertices, 3)
    assert fm.expression.shape == (29, fm.n_vertices, 3)
    assert fm.blend_to_eta.shape == (29, 53) and fm.eta_to_blend.shape == (53, 29)
    assert len(fm.blend_names) == 53 and fm.landmarks68.shape == (68,)
    assert fm.faces.max() < fm.n_vertices


def test_identity_modes_are_orthogonal(fm):
    S = fm.identity.reshape(99, -1).astype(np.float64)
    G = S @ S.T
    cos = G / np.sqrt(np.outer(np.diag(G), np.diag(G)))
    np.fill_diagonal(cos, 0)
    assert np.abs(cos).max() < 1e-3


def test_expression_basis_orthogonal_on_skin_and_ordered(fm):
    skin = fm.vertex_source_ids < 11248
    E = fm.expression[:, skin].reshape(29, -1).astype(np.float64)
    G = E @ E.T
    off = G - np.diag(np.diag(G))
    assert np.abs(off).max() < 1e-4 * np.diag(G).max()
    assert np.all(np.diff(np.diag(G)) <= 1e-9)        # PCA order: energy decreasing
    assert fm.explained[-1] > 0.99


def test_eta_reproduces_blendshape_geometry(fm):
    """A blendshape mix and its 29-D eta give nearly the same mesh (99% energy kept)."""
    src = np.load(face_model.source_path())
    rng = np.random.default_rng(0)
    w = np.zeros(53, np.float32)
    w[rng.choice(53, 5, replace=False)] = rng.uniform(0.3, 1.0, 5)
    truth = np.tensordot(w, src["expression"][:, fm.vertex_source_ids], axes=1)
    approx = fm.vertices(eta=fm.eta_from_blendshapes(w)) - fm.mean
    skin = fm.vertex_source_ids < 11248
    err = np.linalg.norm(approx[skin] - truth[skin]) / np.linalg.norm(truth[skin])
    assert err < 0.15
    back = fm.blendshapes_from_eta(fm.eta_from_blendshapes(w))
    assert np.corrcoef(back, w)[0, 1] > 0.9


def test_blendshape_solve_is_plain_bounded_fista(fm):
    """The precomputed solver is FISTA on |w M^T - eta|^2 under 0 <= w <= 1, written out
    the plain way here: same weights, one face or a batch."""
    M = fm.blend_to_eta.astype(np.float64)
    eta = np.random.default_rng(1).normal(0, 0.6, (20, 29))
    step = 1.0 / np.linalg.norm(M, 2) ** 2
    w = np.clip(eta @ fm.eta_to_blend.T.astype(np.float64), 0, 1)
    y, t = w.copy(), 1.0
    for _ in range(150):
        w_next = np.clip(y - step * ((y @ M.T - eta) @ M), 0, 1)
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        y, w, t = w_next + (t - 1) / t_next * (w_next - w), w_next, t_next
    np.testing.assert_allclose(fm.blendshapes_from_eta(eta), w, atol=1e-6)
    np.testing.assert_allclose(fm.blendshapes_from_eta(eta[3]), w[3], atol=1e-6)
    assert 0 <= w.min() and w.max() <= 1


def test_cache_is_checksummed_and_rebuilt_when_stale(tmp_path, fm):
    p = face_model.build(tmp_path / "m.npz")
    assert face_model.load(str(p)).sha256 == fm.sha256
    d = dict(np.load(p))
    d["mean"] = d["mean"] + 1e-3
    np.savez(tmp_path / "bad.npz", **d)
    with pytest.raises(face_model.FaceModelError, match="corrupt"):
        face_model.load(str(tmp_path / "bad.npz"))
    # a cache in the first layout (a byte hash of the floats) is derived again
    old = {k: v for k, v in np.load(p).items() if k not in ("model_id", "checksum")}
    np.savez(tmp_path / "old.npz", sha256=np.array("7277bd6c7db1"), **old)
    assert face_model.load(str(tmp_path / "old.npz")).sha256 == fm.sha256


_DERIVE = """
import json, sys
from workers import face_model
m = face_model.load(face_model.build(sys.argv[1]).as_posix())
print(json.dumps(m.meta()))
"""


def test_identity_is_the_same_whatever_the_blas_threads(tmp_path, fm):
    """The float results differ in their last bits with OpenBLAS's thread count (and
    kernel); the identity and the signs must not."""
    records = {}
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        out = subprocess.run([sys.executable, "-c", _DERIVE, str(tmp_path / f"t{threads}.npz")], env=env,
                             capture_output=True, text=True, cwd=face_model.REPO_ROOT, check=True)
        records[threads] = json.loads(out.stdout)
    assert records["1"]["sha256"] == records["2"]["sha256"] == fm.sha256
    for rec in records.values():
        assert face_model.fingerprint_mismatch(rec["fingerprint"], fm.fingerprint) is None
    a, b = np.load(tmp_path / "t1.npz"), np.load(tmp_path / "t2.npz")
    for k in ("identity", "expression", "blend_to_eta"):
        assert np.abs(a[k] - b[k]).max() <= 1e-6 * np.abs(a[k]).max()


def _arrays(fm):
    return {k: getattr(fm, k) for k in ("mean", "identity", "expression", "blend_to_eta", "eta_to_blend",
                                        "faces", "face_part", "landmarks68", "vertex_source_ids", "explained")} \
        | {"blend_names": np.array(fm.blend_names)}


def _variant(fm, change) -> face_model.FaceModel:
    arrays = {k: np.array(v, copy=True) for k, v in _arrays(fm).items()}
    change(arrays)
    return face_model.FaceModel.from_arrays(arrays, fm.version, fm.sha256)


def test_float_noise_keeps_the_identity(fm):
    rng = np.random.default_rng(0)

    def noise(a):
        for k in ("mean", "identity", "expression", "blend_to_eta", "eta_to_blend"):
            a[k] = (a[k] * (1 + 1e-7 * rng.standard_normal(a[k].shape))).astype(np.float32)
    face_model.check(fm.meta(), _variant(fm, noise))          # no error


@pytest.mark.parametrize("change, reason", [
    (lambda a: a["identity"].__setitem__(17, -a["identity"][17]), "identity component 17 has the opposite sign"),
    (lambda a: a["expression"].__setitem__([3, 4], a["expression"][[4, 3]]), "expression component 3 differs"),
    (lambda a: a["blend_to_eta"].__setitem__(0, -a["blend_to_eta"][0]), "blend_to_eta component 0 has the opposite"),
    (lambda a: a.__setitem__("identity", a["identity"][:98]), "identity has 99 components there and 98 here"),
])
def test_a_real_change_is_refused(fm, change, reason):
    with pytest.raises(face_model.FaceModelError, match=reason):
        face_model.check(fm.meta(), _variant(fm, change))


def test_another_source_is_another_identity(tmp_path, fm):
    src = dict(np.load(face_model.source_path()))
    src["identity"] = src["identity"][::-1].copy()          # same numbers, other order
    np.savez(tmp_path / "other.npz", **src)
    other = face_model.identity_of(face_model.file_sha256(tmp_path / "other.npz"))
    assert other != fm.sha256
    with pytest.raises(face_model.FaceModelError, match="another source or derivation"):
        face_model.check({**fm.meta(), "sha256": other}, fm)


def test_sign_and_order_rules_refuse_to_guess():
    comps = np.array([[1.0, -0.2, 0.1], [0.3, -1.0, 0.2]])
    assert face_model.orient(comps, np.array([0, 1])).tolist() == [1.0, -1.0]
    with pytest.raises(face_model.FaceModelError, match="no margin for components \\[1\\]"):
        face_model.orient(comps, np.array([0, 2]))
    face_model.check_order(np.array([5.0, 4.0, 3.0]), 2, "test")
    with pytest.raises(face_model.FaceModelError, match="order would be a matter of rounding"):
        face_model.check_order(np.array([5.0, 4.0, 4.0 * (1 - 1e-7)]), 2, "test")


def test_sign_anchors_hold_with_a_wide_margin(fm):
    """Each component's anchored coordinate is (nearly) its largest, so rounding cannot
    flip the sign the rule picks."""
    A = fm.identity.reshape(99, -1)
    remap = {int(v): i for i, v in enumerate(fm.vertex_source_ids)}
    at = np.array([A[k, remap[v] * 3 + ax] for k, (v, ax) in enumerate(face_model.ID_SIGN_ANCHORS)])
    assert (at > 0).all() and (at / np.abs(A).max(1)).min() > 0.9
    names = list(fm.blend_names)
    U = fm.eta_to_blend
    at = np.array([U[names.index(n), k] for k, n in enumerate(face_model.EXP_SIGN_ANCHORS)])
    assert (at > 0).all() and (at / np.abs(U).max(0)).min() > 0.9
