"""Domain-randomised scenes: labels consistent with the image, and expression samplers
that draw what they promise."""
from __future__ import annotations

import numpy as np
import pytest

from training.render import render
from training.scene import EXPRESSIONS, ActionExpressions, SparseExpressions, compose, make_sample, sample_scene
from workers import face_model

SIZE = 160


@pytest.fixture(scope="module")
def model():
    return face_model.load()


def _draws(sampler, model, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return np.array([sampler(rng, model.blend_names) for _ in range(n)])


def _rate(w, model, name):
    return float((w[:, model.blend_names.index(name)] > 0.05).mean())


def test_make_sample_labels(model):
    rng = np.random.default_rng(1)
    for _ in range(8):
        image, labels = make_sample(rng, model, size=SIZE)
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        assert labels["alpha"].shape == (99,) and labels["eta"].shape == (29,)
        assert labels["landmarks2d"].shape == (68, 2) and labels["visible68"].dtype == bool
        lm = labels["landmarks2d"]
        center = (lm.min(axis=0) + lm.max(axis=0)) / 2
        assert np.all(center > 0.2 * SIZE) and np.all(center < 0.8 * SIZE)
        assert 0.2 * SIZE < np.ptp(lm, axis=0).max() < 1.0 * SIZE
        assert -90 <= labels["yaw"] <= 90 and -60 <= labels["pitch"] <= 60
    a, la = make_sample(np.random.default_rng(7), model)
    b, lb = make_sample(np.random.default_rng(7), model)
    assert np.array_equal(a, b) and np.array_equal(la["eta"], lb["eta"])


def test_make_sample_uses_the_given_expression_sampler(model):
    class Fixed:
        def __call__(self, rng, names):
            w = np.zeros(len(names), np.float32)
            w[names.index("jawOpen")] = 0.7
            return w

    _, lab = make_sample(np.random.default_rng(5), model, size=SIZE, expressions=Fixed())
    assert lab["blendshapes"][model.blend_names.index("jawOpen")] == np.float32(0.7)
    assert np.allclose(lab["eta"], model.eta_from_blendshapes(lab["blendshapes"]), atol=1e-5)


def test_compose_keeps_the_face_and_fills_the_background(model):
    rng = np.random.default_rng(3)
    scene, camera = sample_scene(rng, model, SIZE)
    r = render(model, scene, camera)
    background = np.full((64, 64, 3), 200, np.uint8)
    image = compose(r, rng, [background])
    assert image.shape == r.image.shape and image.dtype == np.uint8
    # The render is black off the face; the composite is not.
    assert np.abs(image[~r.mask].astype(float) - r.image[~r.mask]).mean() > 10


@pytest.mark.parametrize("sampler", [SparseExpressions(), ActionExpressions()], ids=lambda s: s.name)
def test_expressions_keep_the_linear_model_rules(model, sampler):
    w = _draws(sampler, model)
    idx = model.blend_names.index
    assert w.min() >= 0 and w.max() <= 1
    assert np.all(w[:, idx("mouthClose")] <= w[:, idx("jawOpen")] + 1e-6)
    assert not np.any((w[:, idx("jawLeft")] > 0) & (w[:, idx("jawRight")] > 0))
    assert not np.any((w[:, idx("mouthLeft")] > 0) & (w[:, idx("mouthRight")] > 0))


def test_sparse_expressions_are_sparse_and_uniform(model):
    w = _draws(SparseExpressions(), model)
    rates = [_rate(w, model, n) for n in model.blend_names]
    assert 0.17 < float((w.max(1) == 0).mean()) < 0.23          # 20% neutral
    assert max(rates) < 0.12 and 0.04 < float(np.median(rates)) < 0.1
    assert 2 < (w > 0.05).sum(1)[w.max(1) > 0].mean() < 7


def test_action_expressions_show_the_readable_actions_often(model):
    w = _draws(ActionExpressions(), model)
    assert 0.08 < float((w.max(1) == 0).mean()) < 0.2           # 10% drawn neutral, a few empty
    for name in ("jawOpen", "mouthSmile_L", "eyeBlink_R", "browInnerUp_L"):
        assert 0.22 < _rate(w, model, name) < 0.45, name
    idx = model.blend_names.index
    left, right = w[:, idx("eyeBlink_L")], w[:, idx("eyeBlink_R")]
    both = (left > 0.4) & (right > 0.4)
    wink = (np.maximum(left, right) > 0.6) & (np.minimum(left, right) < 0.25)
    assert both.mean() > 0.1 and 0.01 < wink.mean() < both.mean()
    # full-strength actions occur, so the extremes are learned
    assert (w[:, idx("jawOpen")] > 0.8).mean() > 0.05


def test_samplers_are_named_for_the_synth_command():
    assert set(EXPRESSIONS) == {"sparse", "actions"}
    assert all(EXPRESSIONS[k].name == k for k in EXPRESSIONS)
