"""The training command on a few renders: it resumes where it stopped, and its checkpoint
carries what produced it. (That it learns is measured by `facestream evaluate`,
docs/accuracy.md.)

The "real" half of the batches is the same renders written in the teacher-label layout
(training/real_labels.py), so the test needs neither the teacher nor real video.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from streamer.config import DetectorConfig
from training import metrics, train
from training.data import context_rule
from training.scene import ActionExpressions
from training.synth import BoxModel, make_shard
from training.teacher import MP_TO_68
from workers import checkpoint, face_model
from workers.crops import CropRule
from workers.detector import FaceDetector
from workers.mirror import MIRROR68


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train-data")
    shard = make_shard(8, 3, FaceDetector(DetectorConfig(score_threshold=0.5), threads=1), BoxModel(),
                       context_rule(CropRule()), expressions=ActionExpressions())
    np.savez(tmp / "synth-0000.npz", **shard)
    ids = np.array(sorted(MP_TO_68.values()))
    n = len(shard["crop"])
    np.savez(tmp / "real.npz", crop=shard["crop"], blend=shard["blend"], euler=shard["euler"],
             centre=shard["centre"], scale=shard["scale"], lm9=shard["lm"][:, ids], lm9_ids=ids,
             keep=np.ones(n, bool))
    return tmp


def _train(data, run, steps, *extra):
    torch.set_num_threads(2)
    train.main(["--run", str(run), "--real", str(data / "real.npz"), "--real-val", str(data / "real.npz"),
                "--synth", str(data / "synth-*.npz"), "--steps", str(steps), "--batch", "8",
                "--threads", "2", *extra])


def _log(run):
    return [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]


def test_training_resumes_and_records_its_provenance(data, tmp_path):
    run = tmp_path / "run"
    _train(data, run, 4, "--save-every", "2")
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 4
    _train(data, run, 6, "--save-every", "2")   # the same command with more steps continues
    steps = [r["step"] for r in _log(run) if "eval_real_heldout" in r]
    assert steps == [2, 4, 6]
    model, meta = checkpoint.load(run / "checkpoint" / checkpoint.DEFAULT_NAME)
    assert meta["steps"] == 6 and meta["trained"]
    assert meta["face_model"]["sha256"] == face_model.load().sha256
    assert "--steps 6" in meta["training"]["command"]
    assert meta["training"]["synth"] == [str(data / "synth-*.npz")]
    out = model(torch.zeros(2, 3, 128, 128))
    assert out["expression"].shape == (2, 29) and out["shape"].shape == (2, 99)


def test_shape_loss_is_a_landmark_distance_that_mirrors():
    fm = face_model.load()
    basis = metrics.identity_basis(fm)
    rng = np.random.default_rng(0)
    alpha = torch.from_numpy(rng.normal(size=(4, 99)).astype(np.float32))
    no = torch.zeros(4, dtype=torch.bool)
    assert torch.allclose(train.shape_error_cm(alpha, alpha, no, basis), torch.zeros(4), atol=1e-5)
    # the identity whose landmarks are the mirror image of alpha's
    D = torch.einsum("na,akc->nkc", alpha, basis)
    mirrored = (D[:, torch.from_numpy(MIRROR68)] * torch.tensor([-1.0, 1.0, 1.0])).reshape(4, -1)
    alpha_m = torch.linalg.lstsq(basis.reshape(99, -1).T, mirrored.T).solution.T
    yes = torch.ones(4, dtype=torch.bool)
    assert train.shape_error_cm(alpha_m, alpha, yes, basis).max() < 0.01          # < 0.1 mm
    assert train.shape_error_cm(alpha_m, alpha, no, basis).min() > 0.05           # faces are not symmetric
    # the mean face is 0: the error of predicting it is the face's own landmark offsets
    err0 = train.shape_error_cm(torch.zeros_like(alpha), alpha, no, basis)
    assert torch.allclose(err0, D.norm(dim=-1).mean(1))


def test_mb05_from_3ddfa_mixes_weighted_sources_and_masks_unknown_expression(data, tmp_path):
    """Two label files drawn by weight, one without expression labels (as profiles the
    teacher misses are): the run trains, records its mix and starts from 3DDFA_V2."""
    d = dict(np.load(data / "real.npz"))
    np.savez(tmp_path / "profiles.npz", **d, blend_mask=np.zeros(len(d["crop"]), bool))
    run = tmp_path / "mb05"
    train.main(["--run", str(run), "--arch", "mb05", "--pretrained", "3ddfa_v2",
                "--real", str(data / "real.npz"), str(tmp_path / "profiles.npz"), "--real-weights", "3", "1",
                "--real-val", str(data / "real.npz"), "--synth", str(data / "synth-*.npz"), "--synth-frac", "0.25",
                "--steps", "2", "--batch", "8", "--threads", "2", "--save-every", "2"])
    model, meta = checkpoint.load(run / "checkpoint" / checkpoint.DEFAULT_NAME)
    assert meta["architecture"] == "mb05" and meta["crop"]["size"] == 120
    assert meta["training"]["pretrained"] == "3ddfa_v2" and meta["training"]["real_weights"] == [3.0, 1.0]
    assert all(np.isfinite(r["eta"]) for r in _log(run) if "eta" in r)


def test_real_indices_follow_the_weights():
    idx = train.real_indices(np.array([10, 1000]), np.array([0.75, 0.25]), 4000, np.random.default_rng(0))
    assert 0.72 < (idx < 10).mean() < 0.78 and idx.max() < 1010


def test_a_finished_run_exports_again_under_the_given_name(data, tmp_path):
    run = tmp_path / "run"
    _train(data, run, 2, "--save-every", "2")
    _train(data, run, 2, "--save-every", "2", "--export", str(tmp_path / "facestream-test"))
    _, meta = checkpoint.load(tmp_path / "facestream-test")
    logged = [r["eval_real_heldout"] for r in _log(run) if "eval_real_heldout" in r]
    assert meta["name"] == "facestream-test" and meta["steps"] == 2
    assert meta["evaluation"]["real_heldout_teacher_agreement"] == logged[-1]


def test_emotion_labels_train_a_linear_read_of_eta_and_resume_with_it(data, tmp_path):
    """FER-style labels (names, '' where none) become class indices; the classifier on eta
    learns, and resumes from last.pt with the rest."""
    d = dict(np.load(data / "real.npz"))
    names = np.array(["happy", "", "sad", "surprise"] * len(d["crop"]))[:len(d["crop"])]
    np.savez(tmp_path / "fer.npz", **d, emotion=names)
    run = tmp_path / "emo"
    args = ["--run", str(run), "--real", str(tmp_path / "fer.npz"), "--real-val", str(data / "real.npz"),
            "--synth", str(data / "synth-*.npz"), "--batch", "8", "--threads", "2", "--save-every", "2",
            "--emotion-weight", "0.5"]
    train.main([*args, "--steps", "2"])
    head = torch.load(run / "last.pt", weights_only=False)["emotion_head"]
    train.main([*args, "--steps", "4"])
    later = torch.load(run / "last.pt", weights_only=False)["emotion_head"]
    assert head["weight"].shape == (7, 29) and torch.isfinite(later["weight"]).all()
    assert not torch.equal(head["weight"], later["weight"])
    assert _log(run)[-1]["step"] == 4
    _, meta = checkpoint.load(run / "checkpoint" / checkpoint.DEFAULT_NAME)
    assert meta["training"]["emotion_weight"] == 0.5


def test_emotion_loss_counts_only_labelled_faces():
    head = torch.nn.Linear(29, 7)
    eta, sd = torch.randn(4, 29), torch.full((29,), 2.0)
    y = torch.tensor([3, -1, 5, -1])
    want = torch.nn.functional.cross_entropy(head(eta[[0, 2]] / sd), y[[0, 2]])
    assert torch.allclose(train.emotion_loss(eta, y, sd, head), want)
    assert train.emotion_loss(eta, torch.full((4,), -1), sd, head).item() == 0.0
