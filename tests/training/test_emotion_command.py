"""The emotion command's model choice: made on the calibration part, never the held-out file."""
import numpy as np

from training.emotion import fit_calibrated


def test_the_choice_and_the_temperature_come_from_the_calibration_part():
    rng = np.random.default_rng(0)
    # a class given by the sign pattern of two features: a linear model cannot fit it
    X = rng.normal(size=(2800, 29))
    y = np.where(X[:, 0] * X[:, 1] > 0, 3, 4) + np.where(np.abs(X[:, 2]) > 1.5, 2, 0)
    calib = np.arange(len(y)) % 5 == 0
    clf, log = fit_calibrated(X, y, calib, hidden_choices=((), (32,)))
    assert [c["hidden"] for c in log] == [[], [32]]
    assert log[1]["calibration_macro_f1"] > log[0]["calibration_macro_f1"] + 0.1
    assert clf.meta["hidden"] == [32] and len(clf.layers) == 2
    assert 0.2 < clf.temperature < 5.0
    assert (clf.probs(X[calib]).argmax(1) == y[calib]).mean() > 0.8
