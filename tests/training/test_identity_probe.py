"""The identity probe's parts: the ridge fit and the millimetre score."""
from __future__ import annotations

import numpy as np

from training.identity_probe import landmark_mm, ridge
from workers import face_model


def test_ridge_recovers_a_linear_map_with_an_offset():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(6, 3)), rng.normal(size=3)
    x = rng.normal(size=(400, 6)) * rng.uniform(0.1, 10, 6)
    y = x @ w + b
    held = rng.normal(size=(50, 6))
    assert np.allclose(ridge(x, y, held, lam=1e-6), held @ w + b, atol=1e-4)


def test_landmark_mm_is_zero_for_the_truth_and_grows_with_the_first_mode():
    truth = np.random.default_rng(1).normal(size=(5, 99)).astype(np.float32)
    assert landmark_mm(truth, truth) < 1e-6
    off = truth.copy()
    off[:, 0] += 1.0      # one s.d. of mode 0 moves the landmark vertices by millimetres
    fm = face_model.load()
    rms = np.sqrt((fm.identity[0, fm.landmarks68] ** 2).sum(-1).mean()) * 10
    assert 0.5 * rms < landmark_mm(off, truth) <= rms + 1e-4
