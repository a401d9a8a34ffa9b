"""augment: every label moves with the pixels (box jitter, in-plane rotation, mirror);
degradations change pixels only."""
from __future__ import annotations

import numpy as np
import torch

from training.data import CTX_SIZE, AugmentConfig, augment, degrade
from workers import face_model
from workers.mirror import MIRROR68, blend_mirror
from workers.pose import euler_from_matrix, matrix_from_euler

DOT = 36      # outer corner of the subject's right eye; mirrors to 45
CLEAN = dict(colour=0.0, low_res=0.0, blur=0.0, occlude=0.0, border=0.0)   # geometry only


def _batch(n: int, rng: np.random.Generator) -> dict:
    """Black context crops with one bright 3×3 dot where landmark DOT is."""
    crop = np.zeros((n, CTX_SIZE, CTX_SIZE, 3), np.uint8)
    lm = np.zeros((n, 68, 2), np.float32)
    mask = np.zeros((n, 68), bool)
    for i in range(n):
        u, v = rng.integers(50, 110, 2)
        crop[i, v - 1:v + 2, u - 1:u + 2] = 255
        lm[i, DOT] = (u + 0.5, v + 0.5)   # pixel centres
        mask[i, DOT] = True
    rot = np.stack([matrix_from_euler(30, 10, 5)] * n).astype(np.float32)
    return {"crop": crop, "blend": np.zeros((n, 53), np.float32), "rot": rot,
            "centre": np.full((n, 2), CTX_SIZE / 2, np.float32), "scale": np.ones(n, np.float32),
            "lm": lm, "lm_mask": mask, "shape": np.zeros((n, 99), np.float32), "shape_mask": np.zeros(n, bool)}


def _augment(batch, seed, cfg=None, train=True):
    fm = face_model.load()
    return augment(batch, 128, np.random.default_rng(seed), cfg or AugmentConfig(**CLEAN),
                   blend_mirror(fm.blend_names), torch.from_numpy(fm.blend_to_eta), train=train)


def test_landmark_labels_land_on_the_moved_pixels():
    x, lab = _augment(_batch(32, np.random.default_rng(1)), seed=2)
    flip = lab["flip"].numpy()
    assert 0 < flip.sum() < 32                         # both branches are exercised
    brightness = x.mean(1).flatten(1).numpy()          # (n, 128·128)
    for i in range(32):
        v, u = divmod(int(brightness[i].argmax()), 128)
        j = MIRROR68[DOT] if flip[i] else DOT
        assert lab["lm_mask"][i, j] and lab["lm_mask"][i].sum() == 1
        label = (lab["lm"][i, j].numpy() + 1) / 2 * 128
        assert np.hypot(*(label - (u + 0.5, v + 0.5))) < 1.5, (i, label, u, v)


def test_mirror_negates_yaw_and_roll_and_rotation_adds_to_roll():
    x, lab = _augment(_batch(32, np.random.default_rng(1)), seed=3,
                      cfg=AugmentConfig(scale=0, shift=0, rotate_deg=20, **CLEAN))
    for R, flip, delta in zip(lab["R"].numpy(), lab["flip"].numpy(), lab["delta_deg"].numpy()):
        yaw, pitch, roll = euler_from_matrix(R)
        sign = -1 if flip else 1
        assert np.allclose([yaw, pitch], [30 * sign, 10], atol=1e-3)
        assert abs(roll - (5 * sign + delta)) < 1e-3


def test_the_same_seed_gives_the_same_batch_and_evaluation_is_unaugmented():
    batch = _batch(8, np.random.default_rng(1))
    x1, l1 = _augment(batch, seed=5)
    x2, l2 = _augment(batch, seed=5)
    assert torch.equal(x1, x2) and all(torch.equal(l1[k], l2[k]) for k in l1)
    _, plain = _augment(batch, seed=5, train=False)
    assert not plain["flip"].any() and torch.allclose(plain["delta_deg"], torch.zeros(8))
    centre = (plain["lm"][:, DOT].numpy() + 1) / 2 * 128  # the context crop shrinks by CTX_FACTOR about the centre
    want = (batch["lm"][:, DOT] - CTX_SIZE / 2) * 1.25 * 128 / CTX_SIZE + 64
    assert np.allclose(centre, want, atol=1e-3)


def test_degradations_touch_the_chosen_share_of_faces_and_stay_in_range():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(0, 1, (200, 3, 32, 32))).float()
    for field in ("low_res", "blur", "occlude", "border"):
        cfg = AugmentConfig(**{**CLEAN, field: 0.5})
        y = degrade(x, np.random.default_rng(1), cfg)
        changed = (y - x).abs().flatten(1).max(1).values > 1e-3
        assert 0.4 < changed.float().mean() < 0.6, field
        assert y.min() >= 0 and y.max() <= 1
    assert torch.equal(degrade(x, np.random.default_rng(1), AugmentConfig(**CLEAN)), x)
