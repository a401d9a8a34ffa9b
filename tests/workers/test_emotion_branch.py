"""workers.emotion_branch: a copy of the trunk's last blocks that reads emotion beside the
network. It must leave every other output as it was, survive batch-norm folding and
mirror averaging, carry its temperature in its weights, and be refused beside other
weights."""
import json
import shutil

import numpy as np
import pytest
import torch

from workers import checkpoint, emotion_branch
from workers.emotion_branch import EmotionBranch, EmotionBranchError
from workers.emotion_labels import EmotionSource
from workers.mirror import for_inference
from workers.regressor import Regressor


def _shipped_with_branch(seed: int = 0) -> tuple[torch.nn.Module, dict, EmotionBranch]:
    model, meta = checkpoint.load(checkpoint.default_path())
    branch = EmotionBranch(model.trunk, 9)
    torch.manual_seed(seed)
    torch.nn.init.normal_(branch.classifier.weight, std=0.3)
    return model, meta, branch.eval()


def _crops(n: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(-1, 1, (n, 3, 120, 120)).astype(np.float32))


def test_the_branch_reads_and_changes_nothing_else():
    model, _, branch = _shipped_with_branch()
    x = _crops(4)
    with torch.inference_mode():
        before = model(x)
        model.attach_emotion_branch(branch)
        after = model(x)
    assert set(after) == set(before) | {"emotion"}
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert after["emotion"].shape == (4, 7)
    # the branch starts as a copy of the blocks after the split, not a view of them
    assert branch.blocks[0].conv_sep.weight.data_ptr() != model.trunk[9].conv_sep.weight.data_ptr()


def test_folded_and_mirror_averaged_the_branch_reads_what_it_was_trained_to():
    model, meta, branch = _shipped_with_branch()
    model.attach_emotion_branch(branch)
    regressor = Regressor(model, meta, device="cpu")
    x = _crops(5, 1)
    with torch.inference_mode():
        want = for_inference(model, meta)(x)
        got = regressor.model(x.contiguous(memory_format=torch.channels_last))
        # a mirrored crop shows the same emotion: averaged, the two views give one reading
        flipped = regressor.model(x.flip(-1).contiguous(memory_format=torch.channels_last))
        plain = model(x)["emotion"]
        mirrored = model(x.flip(-1))["emotion"]
    np.testing.assert_allclose(got["emotion"].numpy(), want["emotion"].numpy(), atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(got["emotion"].numpy(), flipped["emotion"].numpy(), atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(want["emotion"].numpy(), ((plain + mirrored) / 2).numpy(), atol=1e-5)
    pred = regressor(x)
    np.testing.assert_allclose(pred.emotion_probs, torch.softmax(got["emotion"], 1).numpy(), atol=1e-6)
    np.testing.assert_allclose(pred.emotion_probs.sum(1), 1, atol=1e-5)


def _copy_shipped(tmp_path):
    src = checkpoint.default_path()
    dst = tmp_path / src.name
    for suffix in (".safetensors", ".json", ".presence.json"):
        shutil.copy(src.with_suffix(suffix), dst.with_suffix(suffix))
    return dst


def test_saved_beside_the_weights_it_loads_with_its_temperature_folded_in(tmp_path):
    ckpt = _copy_shipped(tmp_path)
    model, _, branch = _shipped_with_branch(2)
    emotion_branch.save(branch, ckpt, temperature=2.0, meta={"training": {"command": "test"}})
    loaded = emotion_branch.load(ckpt, model.trunk)
    assert loaded is not None and loaded.split == 9
    shared = model.trunk[:9](model.stem(_crops(3, 3)))
    with torch.inference_mode():
        np.testing.assert_allclose(loaded(shared).numpy(), (branch(shared) / 2.0).numpy(), atol=1e-5)
    # the regressor picks it up: probabilities from the branch, not from eta
    regressor = Regressor.load(str(ckpt), device="cpu")
    assert regressor.emotion is None
    pred = regressor(_crops(2, 4))
    assert pred.emotion_probs.shape == (2, 7) and np.isfinite(pred.emotion_probs).all()


def test_a_branch_for_other_weights_or_a_damaged_one_is_refused(tmp_path):
    ckpt = _copy_shipped(tmp_path)
    model, _, branch = _shipped_with_branch()
    js = emotion_branch.save(branch, ckpt, 1.0, {})
    meta = json.loads(js.read_text())
    meta["network"]["weights_sha256"] = "0" * 64
    js.write_text(json.dumps(meta))
    with pytest.raises(EmotionBranchError, match="other network weights"):
        emotion_branch.load(ckpt, model.trunk)
    js.write_text("{not json")
    with pytest.raises(EmotionBranchError, match="not valid JSON"):
        emotion_branch.load(ckpt, model.trunk)
    js.unlink()
    assert emotion_branch.load(ckpt, model.trunk) is None    # none ships: emotion from eta


def test_the_eta_reader_leaves_the_branch_off(tmp_path):
    ckpt = _copy_shipped(tmp_path)
    model, _, branch = _shipped_with_branch()
    emotion_branch.save(branch, ckpt, 1.0, {})
    regressor = Regressor.load(str(ckpt), "cpu", EmotionSource.ETA)
    with torch.inference_mode():
        assert "emotion" not in regressor.model(_crops(2))


def test_the_shipped_branch_reads_held_out_fer_faces_better_than_eta():
    """FER2013 faces the branch never learnt from or was calibrated on
    (training.wild_labels.heldout), cut as the service cuts them: the branch names more
    of them right than the classifier over eta does, on the same faces."""
    import pyarrow.parquet as pq

    from training.wild_data import FER, decode
    from training.wild_labels import heldout
    from training.wild_teach import prior_box
    from workers.crops import CropRule, crop_faces, to_tensor
    from workers.emotion_labels import EMOTION_CLASSES

    table = pq.read_table(FER.path, columns=["name", "label", "jpeg"])
    rows = np.flatnonzero(heldout(np.array(table.column("name").to_pylist())))[::4]   # every class, in file order
    table = table.take(rows)
    images = np.stack([decode(b) for b in table.column("jpeg").to_pylist()])
    y = np.array([EMOTION_CLASSES.index(c) for c in table.column("label").to_pylist()])
    branch = Regressor.load(device="cpu")
    eta = Regressor.load(device="cpu", emotion_source=EmotionSource.ETA)
    rule = CropRule.from_meta(branch.meta)
    box = prior_box(FER)[None]
    x = to_tensor(np.stack([crop_faces(image, box, rule)[0][0] for image in images]), rule)
    got = {name: float((r(x).emotion_probs.argmax(1) == y).mean()) for name, r in (("branch", branch), ("eta", eta))}
    assert len(y) == 714
    assert got["branch"] >= 0.59, got                 # 0.623 on all 2,856 (docs/accuracy.md)
    assert got["branch"] >= got["eta"] + 0.03, got
