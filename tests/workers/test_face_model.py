"""The derived face model: exact sizes, orthogonality, the eta <-> blendshape map, hash."""
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


def test_hash_is_stable_and_checked(tmp_path, fm):
    p = face_model.build(tmp_path / "m.npz")
    assert face_model.load(str(p)).sha256 == fm.sha256
    d = dict(np.load(p))
    d["mean"] = d["mean"] + 1e-3
    np.savez(tmp_path / "bad.npz", **d)
    with pytest.raises(ValueError, match="corrupt"):
        face_model.load(str(tmp_path / "bad.npz"))
