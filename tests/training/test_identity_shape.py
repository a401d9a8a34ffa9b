"""The identity-shape refit: alpha learns who is who from a teacher's similarities while it
keeps the shape renders say, and the export changes nothing but the shape head."""
import json

import numpy as np
import torch

from training.identity_shape import FitConfig, _auc, export, fit, shape_distance_cm
from training.metrics import identity_basis
from workers import checkpoint, face_model
from workers.crops import CropRule
from workers.networks import FaceRegressor, ShapeInput


def _people(rng, persons, faces, dim, noise):
    centres = rng.normal(size=(persons, dim))
    who = np.repeat(np.arange(persons), faces)
    f = centres[who] + noise * rng.normal(size=(len(who), dim))
    return torch.tensor(f, dtype=torch.float32), who


def test_alpha_separates_the_teachers_persons_and_keeps_render_shapes():
    rng = np.random.default_rng(0)
    basis = identity_basis(face_model.load())
    dim = 48
    f0, who = _people(rng, persons=40, faces=6, dim=dim, noise=0.3)
    f1 = f0 + 0.1 * torch.randn_like(f0)                       # the mirror view
    teacher = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(40, 16)), dtype=torch.float32), dim=1)
    emb = torch.nn.functional.normalize(teacher[who] + 0.05 * torch.randn(len(who), 16), dim=1)
    # renders: alpha is a linear function of the features, as a well-trained trunk would see it
    rf = torch.randn(600, dim)
    truth = torch.randn(dim, 99) * 0.15
    ra = rf @ truth
    head = fit(f0, f1, emb, rf, ra, basis, FitConfig(steps=400, batch=128))

    new, _ = _people(np.random.default_rng(0), 40, 6, dim, 0.3)       # same persons, new faces
    with torch.no_grad():
        a = torch.nn.functional.normalize(head(new + 0.2 * torch.randn_like(new)), dim=1).numpy()
        shape_mm = shape_distance_cm(head(rf[:200]), ra[:200], basis).mean().item() * 10
        mean_face_mm = shape_distance_cm(torch.zeros_like(ra[:200]), ra[:200], basis).mean().item() * 10
    d = 1 - a @ a.T
    iu = np.triu_indices(len(a), 1)
    same = who[iu[0]] == who[iu[1]]
    assert _auc(d[iu][same], d[iu][~same]) > 0.95
    assert shape_mm < 0.6 * mean_face_mm


def _meta():
    return {"name": "t", "trained": True, **CropRule(size=64).to_meta(), "face_model": face_model.load().meta()}


def test_export_swaps_only_the_shape_head_and_re_signs_the_sidecars(tmp_path):
    torch.manual_seed(0)
    model = FaceRegressor("tiny").eval()
    src = checkpoint.save(model, _meta(), tmp_path / "src")
    sha = checkpoint.weights_sha256(src)
    for kind in ("emotion", "presence"):
        checkpoint.write_meta(checkpoint.sidecar_path(src, kind), {"network": {"name": "t", "weights_sha256": sha}})
    head = torch.nn.Linear(4 * 32, 99)
    out = export(model, _meta(), head, src, tmp_path / "out", {"validation": {"x": 1}})
    new, meta = checkpoint.load(out)
    assert new.shape_input is ShapeInput.TRUNK_2X2 and meta["identity_shape"]["refitted_from_sha256"] == sha
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), new(x)
        cells = torch.nn.functional.adaptive_avg_pool2d(new.trunk(new.stem(x)), 2).flatten(1)
        assert torch.allclose(b["shape"], head(cells))
    assert all(torch.equal(a[k], b[k]) for k in a if k != "shape")
    for kind in ("emotion", "presence"):
        net = json.loads(checkpoint.sidecar_path(out, kind).read_text())["network"]
        assert net["weights_sha256"] == checkpoint.weights_sha256(out) and net["carried_over_from_sha256"] == sha


def test_export_leaves_a_sidecar_fitted_on_other_weights_to_be_refused(tmp_path):
    model = FaceRegressor("tiny").eval()
    src = checkpoint.save(model, _meta(), tmp_path / "src")
    checkpoint.write_meta(checkpoint.sidecar_path(src, "emotion"), {"network": {"weights_sha256": "0" * 64}})
    out = export(model, _meta(), torch.nn.Linear(128, 99), src, tmp_path / "out", {})
    assert not checkpoint.sidecar_path(out, "emotion").exists()   # loading then asks for a refit
