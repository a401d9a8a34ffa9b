"""The identity branch: its own copy of trunk blocks learns who is who from a teacher while
alpha keeps the shape renders say, and the export changes nothing but alpha."""
import json

import numpy as np
import torch
from safetensors.torch import save_file

from training.identity_branch import BranchConfig, IdentityBranch, export, fit
from training.identity_teacher import _auc, shape_distance_cm
from training.metrics import identity_basis
from workers import checkpoint, face_model
from workers.crops import CropRule
from workers.networks import FaceRegressor, ShapeBranch, ShapeInput

SPLIT = 2   # the tiny trunk's maps there: 16 channels, 8×8 cells for a 64-px input


def _meta():
    return {"name": "t", "trained": True, **CropRule(size=64).to_meta(), "face_model": face_model.load().meta()}


def _people(rng, persons, faces, views):
    """Maps (N, views, 2, 16, 8, 8): each person a pattern, each view and mirror image noisy."""
    centres = np.maximum(rng.normal(size=(persons, 16, 8, 8)), 0)
    who = np.repeat(np.arange(persons), faces)
    m = centres[who][:, None, None] + 0.4 * rng.normal(size=(len(who), views, 2, 16, 8, 8))
    m[:, :, 1] = m[:, :, 1, :, :, ::-1]
    return torch.tensor(m, dtype=torch.float32), who


def test_the_branch_learns_the_teachers_persons_and_keeps_render_shapes():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    basis = identity_basis(face_model.load())
    cfg = BranchConfig(split=SPLIT, depth=1, views=2, steps=200, batch=64, render_batch=64, lr=3e-3, w_shape=5.0)
    model = FaceRegressor("tiny").eval()
    maps, who = _people(rng, persons=30, faces=6, views=cfg.views)
    teacher = torch.nn.functional.normalize(torch.randn(30, 128), dim=1)
    emb = torch.nn.functional.normalize(teacher[who] + 0.05 * torch.randn(len(who), 128), dim=1)
    branch = IdentityBranch(model, cfg)
    rmaps = torch.relu(torch.randn(400, 16, 8, 8))
    with torch.no_grad():   # renders' alpha: a function the branch as started can represent
        ralpha = branch.cells(rmaps) @ (torch.randn(64, 99) * 0.15)
    fit(maps, emb, rmaps, ralpha, basis, branch, cfg, log_every=1000)

    new, _ = _people(np.random.default_rng(0), 30, 6, 1)   # same persons, new noise
    with torch.no_grad():
        a = torch.nn.functional.normalize(branch(new[:, 0, 0]), dim=1).numpy()
        shape_mm = shape_distance_cm(branch(rmaps[:200]), ralpha[:200], basis).mean().item() * 10
        mean_face_mm = shape_distance_cm(torch.zeros_like(ralpha[:200]), ralpha[:200], basis).mean().item() * 10
    d = 1 - a @ a.T
    iu = np.triu_indices(len(a), 1)
    same = who[iu[0]] == who[iu[1]]
    assert _auc(d[iu][same], d[iu][~same]) > 0.95
    assert shape_mm < 0.6 * mean_face_mm


def test_export_swaps_only_alpha_and_carries_every_sidecar_over(tmp_path):
    torch.manual_seed(0)
    model = FaceRegressor("tiny", ShapeInput.TRUNK_2X2).eval()     # as the shipped network was
    src = checkpoint.save(model, _meta(), tmp_path / "src")
    sha = checkpoint.weights_sha256(src)
    for kind in ("emotion", "presence", "emotion-branch"):
        checkpoint.write_meta(checkpoint.sidecar_path(src, kind), {"network": {"name": "t", "weights_sha256": sha}})
    save_file({"w": torch.ones(3)}, str(checkpoint.sidecar_path(src, "emotion-branch").with_suffix(".safetensors")))
    cfg = BranchConfig(split=SPLIT, depth=1)
    branch = IdentityBranch(model, cfg).eval()
    with torch.no_grad():
        branch.blocks[0].conv1.weight.mul_(1.2)
    out = export(model, _meta(), branch, cfg, src, tmp_path / "out", {"validation": {"x": 1}})
    new, meta = checkpoint.load(out)
    assert new.shape_input is ShapeInput.BRANCH and new.branch_spec == ShapeBranch(SPLIT, 1)
    assert meta["identity_branch"]["trained_beside_sha256"] == sha and "identity_shape" not in meta
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), new(x)
        assert torch.allclose(b["shape"], branch(model.shared(x, SPLIT)), atol=1e-6)
    assert all(torch.equal(a[k], b[k]) for k in a if k != "shape")
    for kind in ("emotion", "presence", "emotion-branch"):
        net = json.loads(checkpoint.sidecar_path(out, kind).read_text())["network"]
        assert net["weights_sha256"] == checkpoint.weights_sha256(out) and net["carried_over_from_sha256"] == sha
    assert checkpoint.sidecar_path(out, "emotion-branch").with_suffix(".safetensors").exists()
