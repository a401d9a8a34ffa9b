"""The identity fits' shared pieces: the relational loss rewards alpha similarities that
rank faces as the teacher does, and validation reads who is who and shape off held-out data."""
import numpy as np
import torch

from training.identity_teacher import _auc, relational_loss, shape_distance_cm, validate
from training.metrics import identity_basis
from workers import face_model


def _teacher(persons=12, faces=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(persons, 16, generator=g), dim=1)
    who = torch.arange(persons).repeat_interleave(faces)
    emb = torch.nn.functional.normalize(centres[who] + 0.05 * torch.randn(len(who), 16, generator=g), dim=1)
    return emb, who


def test_the_relational_loss_prefers_alpha_that_groups_faces_as_the_teacher_does():
    emb, who = _teacher()
    scale = torch.tensor(float(np.log(20.0)))
    agreeing = torch.cat([emb, torch.zeros(len(emb), 83)], 1)           # alpha ranks faces as dlib does
    shuffled = agreeing[torch.randperm(len(emb), generator=torch.Generator().manual_seed(1))]
    good = relational_loss(agreeing, agreeing, emb, scale)
    bad = relational_loss(shuffled, shuffled, emb, scale)
    assert good < bad - 0.5, (good, bad)


def test_validate_reads_teacher_agreement_mirror_pairs_and_render_shape():
    emb, who = _teacher(persons=40, faces=3)
    basis = identity_basis(face_model.load())
    alpha = torch.cat([emb, torch.zeros(len(emb), 83)], 1)
    renders = torch.randn(50, 99) * 0.3
    v = validate(torch.nn.Identity(), alpha, alpha + 0.01 * torch.randn_like(alpha), emb.numpy(), renders,
                 renders, basis)
    assert v["teacher_rank_corr"] > 0.99 and v["mirror_pair_auc"] > 0.99
    assert v["val_renders_shape_mm"] == 0.0 and v["val_renders_mean_face_mm"] > 1.0
    assert abs(v["val_renders_mean_face_mm"] / 10
               - shape_distance_cm(torch.zeros_like(renders), renders, basis).mean().item()) < 1e-6


def test_auc_counts_ties_as_half():
    assert _auc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert _auc(np.array([0.5]), np.array([0.5])) == 0.5
    assert _auc(np.array([0.9]), np.array([0.1, 0.95])) == 0.5
