"""Held-out emotion numbers on cases worked out by hand."""
import numpy as np

from training.emotion_eval import abstention_curve, confusion, ece, metrics, plot_confusion


def _onehot_probs(pred, conf):
    p = np.full((len(pred), 7), (1 - conf) / 6)
    p[np.arange(len(pred)), pred] = conf
    return p


def test_ece_is_the_confidence_accuracy_gap():
    y = np.array([0, 0, 0, 0])
    p = _onehot_probs(np.array([0, 0, 1, 1]), 0.9)   # 90% confident, 50% right
    assert abs(ece(p, y) - 0.4) < 1e-9
    assert ece(_onehot_probs(np.array([0, 0]), 1.0), np.array([0, 0])) == 0.0


def test_metrics_counts_confusion_and_yaw_bins():
    y = np.array([0, 1, 2, 3, 3, 3])
    pred = np.array([0, 1, 2, 3, 4, 4])
    m = metrics(_onehot_probs(pred, 0.8), y, yaw=np.array([0, -5, 20, 40, 50, -60]))
    assert m["accuracy"] == 4 / 6
    assert np.array_equal(np.array(m["confusion"]), confusion(y, pred))
    assert m["confusion"][3][4] == 2
    assert m["accuracy_by_yaw"]["0-15"] == {"faces": 2, "accuracy": 1.0}
    assert m["accuracy_by_yaw"]["45+"] == {"faces": 2, "accuracy": 0.0}
    # per-class F1: angry, disgust, fear 1; happy 2*1/(1+3) = 0.5; neutral 0
    assert abs(m["f1_per_class"]["happy"] - 0.5) < 1e-9 and m["f1_per_class"]["neutral"] == 0.0


def test_abstention_trades_coverage_for_accuracy():
    y = np.array([0, 0, 0, 0])
    p = np.vstack([_onehot_probs(np.array([0, 0]), 0.9), _onehot_probs(np.array([1, 1]), 0.35)])
    c = {r["min_prob"]: r for r in abstention_curve(p, y, thresholds=(0.0, 0.5))}
    assert c[0.0] == {"min_prob": 0.0, "labelled": 1.0, "accuracy": 0.5}
    assert c[0.5] == {"min_prob": 0.5, "labelled": 0.5, "accuracy": 1.0}


def test_confusion_picture_is_written(tmp_path):
    m = metrics(_onehot_probs(np.array([0, 1, 1]), 0.7), np.array([0, 1, 2]))
    out = plot_confusion({"eta": m, "blend": m}, tmp_path / "c.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
