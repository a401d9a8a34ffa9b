"""Checkpoint round trip and refusal of untrained or missing weights."""
import json

import pytest
import torch

from streamer.crops import CropRule
from workers import checkpoint
from workers.networks import FaceRegressor
from workers.regressor import Regressor


def _meta(trained=True):
    return {"name": "t", "trained": trained, **CropRule(size=64).to_meta(),
            "face_model": {"version": "v", "sha256": "0" * 64}}


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    m = FaceRegressor("tiny").eval()
    path = checkpoint.save(m, _meta(), tmp_path / "c")
    m2, meta = checkpoint.load(path)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        a, b = m(x), m2(x)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert meta["architecture"] == "tiny" and meta["crop"]["size"] == 64
    assert json.loads((tmp_path / "c.json").read_text())["format"] == checkpoint.FORMAT


def test_regressor_outputs_have_documented_shapes(tmp_path):
    path = checkpoint.save(FaceRegressor("tiny"), _meta(), tmp_path / "c")
    pred = Regressor.load(str(path), device="cpu")(torch.zeros(2, 3, 64, 64))
    assert pred.expression.shape == (2, 29) and pred.shape.shape == (2, 99)
    assert pred.euler.shape == (2, 3) and pred.quaternion.shape == (2, 4)
    assert pred.landmarks.shape == (2, 68, 2) and pred.centre.shape == (2, 2)


def test_untrained_and_missing_are_refused(tmp_path):
    path = checkpoint.save(FaceRegressor("tiny"), _meta(trained=False), tmp_path / "u")
    with pytest.raises(checkpoint.CheckpointError, match="untrained"):
        checkpoint.load(path)
    with pytest.raises(checkpoint.CheckpointError, match="no trained checkpoint"):
        checkpoint.load(tmp_path / "missing.safetensors")
