"""The presence probe beside a network: its formula, its file, its tie to the weights, and
on the shipped network, real faces against what a lost track's crop shows."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from workers import checkpoint, face_model, presence
from workers.crops import CropRule, crop_faces, to_tensor
from workers.networks import FaceRegressor
from workers.presence import PresenceError, Probe
from workers.regressor import Regressor

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


@pytest.fixture(scope="module")
def real_faces_photo():
    """A held-out photo (not among those the shipped probe was fitted on) and its face box."""
    from streamer.config import DetectorConfig
    from workers.detector import FaceDetector

    image = cv2.cvtColor(cv2.imread(str(REAL / "biden2.jpg")), cv2.COLOR_BGR2RGB)
    det = FaceDetector(DetectorConfig()).detect([image])[0]
    assert len(det) == 1 and det.scores[0] > 0.9
    return image, det.boxes[0].astype(np.float64)


def _ckpt(tmp_path, seed=0):
    torch.manual_seed(seed)
    meta = {"name": "t", "trained": True, **CropRule(size=64).to_meta(), "face_model": face_model.load().meta()}
    return checkpoint.save(FaceRegressor("tiny"), meta, tmp_path / f"net{seed}").with_suffix("")


def _probe(dim, ckpt=None):
    rng = np.random.default_rng(0)
    p = Probe(mean=rng.normal(size=dim), std=np.full(dim, 2.0), w=rng.normal(size=dim), b=0.3)
    if ckpt is not None:
        p.meta["network"] = {"name": "t", "weights_sha256": checkpoint.weights_sha256(ckpt)}
    return p


def test_probability_is_the_documented_sigmoid_and_never_overflows():
    p = _probe(16)
    e = np.random.default_rng(1).normal(size=(4, 16))
    want = 1 / (1 + np.exp(-(((e - p.mean) / p.std) @ p.w + p.b)))
    np.testing.assert_allclose(p.probs(e), want, rtol=1e-6)
    extreme = p.probs(np.stack([p.mean + 1e6 * p.std * np.sign(p.w), p.mean - 1e6 * p.std * np.sign(p.w)]))
    assert extreme.tolist() == [1.0, 0.0]


def test_file_round_trip_and_refusal_of_other_weights(tmp_path):
    ckpt, other = _ckpt(tmp_path, 0), _ckpt(tmp_path, 1)
    dim = FaceRegressor("tiny").heads["expression"].in_features
    assert presence.load(ckpt) is None                     # none shipped: the network still runs
    _probe(dim, ckpt).save(presence.path_for(ckpt))
    back = presence.load(ckpt)
    np.testing.assert_array_equal(back.w, _probe(dim).w)
    assert back.b == 0.3 and back.threshold == 0.5
    _probe(dim, ckpt).save(presence.path_for(other))
    with pytest.raises(PresenceError, match="other network weights"):
        presence.load(other)


def test_regressor_reads_presence_from_the_embedding_every_head_reads(tmp_path):
    ckpt = _ckpt(tmp_path)
    dim = FaceRegressor("tiny").heads["expression"].in_features
    _probe(dim, ckpt).save(presence.path_for(ckpt))
    reg = Regressor.load(str(ckpt), device="cpu")
    x = torch.randn(3, 3, 64, 64)
    pred = reg(x)
    with torch.inference_mode():
        want = _probe(dim).probs(reg.model(x)["embedding"].numpy())
    np.testing.assert_allclose(pred.presence, want, rtol=1e-5)


def test_without_a_probe_presence_is_nan(tmp_path):
    reg = Regressor.load(str(_ckpt(tmp_path)), device="cpu")
    assert np.isnan(reg(torch.randn(2, 3, 64, 64)).presence).all()


def _far_corner(image, box, s):
    """A box of side s in the frame corner furthest from the face."""
    h, w = image.shape[:2]
    x = 0.0 if (box[0] + box[2]) / 2 > w / 2 else w - s
    y = 0.0 if (box[1] + box[3]) / 2 > h / 2 else h - s
    return [x, y, x + s, y + s]


def test_shipped_probe_tells_a_framed_face_from_a_lost_crop(real_faces_photo):
    """On a photo the probe was not fitted on: the detector's framing passes, the same face
    shifted out of the crop, zoomed in on, or a face-free corner does not."""
    image, box = real_faces_photo
    reg = Regressor.load(device="cpu")
    if reg.presence is None:
        pytest.skip("no presence probe shipped beside the default network")
    rule = CropRule.from_meta(reg.meta)
    side = box[2] - box[0]
    boxes = np.array([box,
                      box + np.array([1, 0, 1, 0]) * side * 0.8,                                # shifted
                      np.r_[(box[:2] + box[2:]) / 2 - side * 0.18, (box[:2] + box[2:]) / 2 + side * 0.18],
                      _far_corner(image, box, side * 0.6)])
    crops, _ = crop_faces(image, boxes, rule)
    p = reg(to_tensor(crops, rule)).presence
    assert p[0] >= reg.presence.threshold
    assert (p[1:] < reg.presence.threshold).all(), p
