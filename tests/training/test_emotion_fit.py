"""Class-balanced fitting and temperature calibration on features with a known answer."""
import numpy as np

from training.emotion_fit import balanced_weights, calibrate, calibration_split, class_index, fit, nll
from workers.emotion import CLASSES


def _blobs(n_per, seed=0, spread=1.0):
    """Seven Gaussian classes in 29-D, class c centred at 2 along axis c; counts n_per."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for c, n in enumerate(n_per):
        centre = np.zeros(29)
        centre[c] = 2.0
        X.append(centre + rng.normal(scale=spread, size=(n, 29)))
        y.append(np.full(n, c))
    return np.concatenate(X), np.concatenate(y)


def test_balanced_weights_give_each_class_the_same_total():
    y = np.array([0] * 90 + [1] * 10 + [3] * 50)
    w = balanced_weights(y)
    totals = np.bincount(y, weights=w[y], minlength=7)
    np.testing.assert_allclose(totals[[0, 1, 3]], len(y) / 7)
    assert w[2] == 0.0


def test_a_rare_class_is_still_found():
    counts = (800, 30, 800, 800, 800, 800, 800)
    X, y = _blobs(counts)
    Xt, yt = _blobs((200,) * 7, seed=1)
    clf = fit(X, y, steps=400)
    recall = (clf.logits(Xt).argmax(1) == yt)[yt == 1].mean()
    assert recall > 0.6


def test_temperature_lowers_the_held_out_likelihood_loss():
    X, y = _blobs((300,) * 7, spread=1.6)
    Xc, yc = _blobs((300,) * 7, seed=2, spread=1.6)
    clf = fit(X, y, hidden=(32,), steps=800, weight_decay=0.0)   # over-confident on purpose
    before = nll(clf.logits(Xc), yc, 1.0)
    t = calibrate(clf, Xc, yc)
    assert t != 1.0 and nll(clf.logits(Xc), yc, t) < before
    assert clf.probs(Xc).shape == (len(yc), 7)


def test_calibration_split_is_stable_and_about_the_asked_share():
    names = np.array([f"img{i}.jpg" for i in range(4000)])
    a = calibration_split(names)
    assert abs(a.mean() - 0.15) < 0.02
    perm = np.random.default_rng(0).permutation(len(names))
    assert np.array_equal(calibration_split(names[perm]), a[perm])


def test_class_index_follows_the_class_order():
    assert class_index(np.array(["surprise", "angry", "happy"])).tolist() == [6, 0, 3]
    assert CLASSES[class_index(np.array(["disgust"]))[0]] == "disgust"
