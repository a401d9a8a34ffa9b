"""The shipped-beside-the-network emotion classifier: probabilities, labels, refusals."""
import json

import numpy as np
import pytest
import torch

from streamer.config import EmotionConfig
from workers import checkpoint, emotion, face_model
from workers.crops import CropRule
from workers.emotion import CLASSES, Classifier, EmotionError, label
from workers.emotion_labels import EmotionSource
from workers.networks import FaceRegressor


def _ckpt(tmp_path, seed=0):
    torch.manual_seed(seed)
    meta = {"name": "t", "trained": True, **CropRule(size=64).to_meta(), "face_model": face_model.load().meta()}
    return checkpoint.save(FaceRegressor("tiny"), meta, tmp_path / "net").with_suffix("")


def _clf(ckpt=None):
    rng = np.random.default_rng(0)
    clf = Classifier(mean=rng.normal(size=29), std=np.full(29, 2.0),
                     layers=[(rng.normal(size=(8, 29)), rng.normal(size=8)), (rng.normal(size=(7, 8)), np.zeros(7))],
                     temperature=1.5)
    clf.meta["face_model"] = face_model.load().meta()
    if ckpt is not None:
        clf.meta["network"] = {"name": "t", "weights_sha256": checkpoint.weights_sha256(ckpt)}
    return clf


def test_probabilities_follow_the_documented_formula():
    clf = _clf()
    eta = np.random.default_rng(1).normal(size=(5, 29))
    h = np.maximum((eta - clf.mean) / clf.std @ clf.layers[0][0].T + clf.layers[0][1], 0)
    z = (h @ clf.layers[1][0].T + clf.layers[1][1]) / 1.5
    want = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    got = clf.probs(eta)
    assert got.shape == (5, 7) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-6)


def test_saved_beside_the_checkpoint_and_loaded_back(tmp_path):
    ckpt = _ckpt(tmp_path)
    clf = _clf(ckpt)
    dest = clf.save(emotion.path_for(ckpt))
    assert dest == tmp_path / "net.emotion.json"
    assert emotion.path_for(str(ckpt) + ".safetensors") == dest
    back = emotion.load(ckpt)
    eta = np.random.default_rng(2).normal(size=(4, 29))
    np.testing.assert_allclose(back.probs(eta), clf.probs(eta), rtol=1e-6)
    assert json.loads(dest.read_text())["classes"] == list(CLASSES)


def test_missing_is_none_only_when_optional(tmp_path):
    ckpt = _ckpt(tmp_path)
    assert emotion.load(ckpt, required=False) is None
    with pytest.raises(EmotionError, match="training.emotion"):
        emotion.load(ckpt)


def test_another_face_model_is_refused(tmp_path):
    ckpt = _ckpt(tmp_path)
    clf = _clf(ckpt)
    clf.meta["face_model"] = {**clf.meta["face_model"], "sha256": "0" * 64}
    clf.save(emotion.path_for(ckpt))
    with pytest.raises(EmotionError, match="face model"):
        emotion.load(ckpt, required=False)


def test_other_network_weights_are_refused(tmp_path):
    ckpt = _ckpt(tmp_path)
    _clf(ckpt).save(emotion.path_for(ckpt))
    _ckpt(tmp_path, seed=1)                      # the network is retrained, the classifier is not
    with pytest.raises(EmotionError, match="other network weights"):
        emotion.load(ckpt)


def test_labels_abstain_for_low_probability_small_and_turned_faces():
    p = np.full((5, 7), 0.05)
    p[:, 3] = 0.7                                # happy, confidently
    p[1] = 1 / 7                                 # flat: uncertain
    rule = EmotionConfig(min_prob=0.4, min_face_px=30, max_yaw=50, max_pitch=40)
    got = label(p, face_px=[100, 100, 20, 100, 100], yaw=[0, 0, 0, -70, 10], pitch=[0, 0, 0, 0, 45], rule=rule)
    assert got == ["happy", "uncertain", "too_small", "too_turned", "too_turned"]
    assert label(p[:1], rule=EmotionConfig(min_prob=0.8)) == ["uncertain"]
    assert label(np.full((1, 7), np.nan)) == ["uncertain"]


def test_each_reader_abstains_at_its_own_threshold_unless_one_is_configured():
    """The branch's probabilities are sharper than eta's classifier's: a face whose top
    class has 0.35 is labelled by eta's reader (0.32) and doubted by the branch's (0.37)."""
    p = np.full((1, 7), 0.65 / 6)
    p[0, 3] = 0.35
    default = EmotionConfig()
    assert default.min_prob is None                       # the reader's own
    assert default.for_reader(EmotionSource.BRANCH).min_prob == 0.37
    assert default.for_reader(EmotionSource.ETA).min_prob == 0.32
    assert label(p, rule=default.for_reader(EmotionSource.ETA)) == ["happy"]
    assert label(p, rule=default.for_reader(EmotionSource.BRANCH)) == ["uncertain"]
    assert label(p, rule=default) == ["uncertain"]        # unresolved: the default reader's
    fixed = EmotionConfig(min_prob=0.3)                   # configured: for every reader
    assert fixed.for_reader(EmotionSource.BRANCH) is fixed and fixed.for_reader(EmotionSource.ETA) is fixed
