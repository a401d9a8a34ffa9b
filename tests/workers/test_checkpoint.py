"""Checkpoint round trip and refusal of untrained or missing weights."""
import json

import pytest
import torch

from workers import checkpoint, face_model
from workers.crops import CropRule
from workers.networks import FaceRegressor, ShapeBranch, ShapeInput
from workers.regressor import Regressor


def _meta(trained=True):
    return {"name": "t", "trained": trained, **CropRule(size=64).to_meta(),
            "face_model": face_model.load().meta()}


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


def test_checkpoint_for_another_face_model_is_refused(tmp_path):
    meta = _meta()
    meta["face_model"]["fingerprint"]["identity"][3] = [-x for x in meta["face_model"]["fingerprint"]["identity"][3]]
    path = checkpoint.save(FaceRegressor("tiny"), meta, tmp_path / "flipped")
    with pytest.raises(checkpoint.CheckpointError, match="identity component 3 has the opposite sign"):
        checkpoint.load(path)
    meta = _meta()
    meta["face_model"]["sha256"] = "0" * 64
    path = checkpoint.save(FaceRegressor("tiny"), meta, tmp_path / "other")
    with pytest.raises(checkpoint.CheckpointError, match="another source or derivation"):
        checkpoint.load(path)


def test_older_checkpoints_load_and_migrate(tmp_path):
    """Checkpoints from before the machine-independent identity carry a byte hash and no
    fingerprint: same version loads, and ``migrate`` writes the new record once."""
    fm = face_model.load()
    legacy = {**_meta(), "face_model": {"version": fm.version, "sha256": "7277bd6c7db1" + "0" * 52}}
    path = checkpoint.save(FaceRegressor("tiny"), legacy, tmp_path / "old")
    checkpoint.load(path)
    assert checkpoint.migrate(path) is True
    rec = json.loads((tmp_path / "old.json").read_text())["face_model"]
    assert rec["sha256"] == fm.sha256 and rec["migrated_from_sha256"].startswith("7277bd6c7db1")
    assert face_model.fingerprint_mismatch(rec["fingerprint"], fm.fingerprint) is None
    assert checkpoint.migrate(path) is False
    checkpoint.load(path)

    other = {**_meta(), "face_model": {"version": "ict99x29-v0", "sha256": "0" * 64}}
    path = checkpoint.save(FaceRegressor("tiny"), other, tmp_path / "v0")
    with pytest.raises(checkpoint.CheckpointError, match="face model ict99x29-v0"):
        checkpoint.load(path)
    with pytest.raises(checkpoint.CheckpointError, match="only retrained"):
        checkpoint.migrate(path)


def test_identity_shape_checkpoint_round_trips_and_older_ones_read_alpha_from_the_embedding(tmp_path):
    torch.manual_seed(0)
    m = FaceRegressor("tiny", ShapeInput.TRUNK_2X2).eval()
    path = checkpoint.save(m, _meta(), tmp_path / "c")
    m2, meta = checkpoint.load(path)
    assert meta["shape_input"] == "trunk_2x2" and m2.shape_input is ShapeInput.TRUNK_2X2
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(m(x)["shape"], m2(x)["shape"])
    old = checkpoint.save(FaceRegressor("tiny"), _meta(), tmp_path / "old")
    js = json.loads(old.with_suffix(".json").read_text())
    del js["shape_input"]                       # written before the key existed
    old.with_suffix(".json").write_text(json.dumps(js))
    assert checkpoint.load(old)[0].shape_input is ShapeInput.EMBEDDING


def test_identity_branch_checkpoint_round_trips_with_where_the_branch_leaves(tmp_path):
    torch.manual_seed(0)
    m = FaceRegressor("tiny", ShapeInput.BRANCH, ShapeBranch(split=1, depth=2)).eval()
    path = checkpoint.save(m, _meta(), tmp_path / "c")
    m2, meta = checkpoint.load(path)
    assert meta["shape_branch"] == {"split": 1, "depth": 2} and m2.branch_spec == ShapeBranch(1, 2)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(m(x)["shape"], m2(x)["shape"])
