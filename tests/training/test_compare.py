"""training/compare.py: the headline numbers of two evaluate results, side by side."""
from __future__ import annotations

import json

import numpy as np
import pytest

from training import compare


def _result(yaw: float, fer: float, clip_eta: float | None = None) -> dict:
    res = {"wild:aflw_heldout.npz": {"yaw_bins": {"all": {"model": {
               "yaw_mae_vs_aflw": yaw, "pose_mae_vs_label": {"mean": yaw / 2}, "nme_common8": 4.0}}}},
           "wild:fer_heldout.npz": {"model_eta": {"accuracy": fer, "accuracy_se": 0.009}}}
    if clip_eta is not None:
        res["real:clips.npz"] = {"expression_vs_teacher": {"eta_rmse": clip_eta}}
    return res


def test_rows_pair_the_numbers_both_sides_have():
    got = {name: (a, b) for name, a, b in compare.rows(_result(7.0, 0.53), _result(6.5, 0.55, clip_eta=0.5))}
    assert got["AFLW all: yaw vs AFLW (deg)"] == (7.0, 6.5)
    assert got["AFLW all: pose vs label, mean (deg)"] == (3.5, 3.25)
    assert got["FER: 5-NN on eta"] == (0.53, 0.55)
    assert "clips: eta RMSE vs teacher" not in got          # only one side measured it
    assert not any(name.startswith("AFLW 60-90") for name in got)


def test_a_side_merges_its_files_and_the_table_shows_changes(tmp_path, capsys):
    before, extra, after = tmp_path / "b.json", tmp_path / "x.json", tmp_path / "a.json"
    before.write_text(json.dumps(_result(7.0, 0.53)))
    extra.write_text(json.dumps({"real:clips.npz": {"expression_vs_teacher": {"eta_rmse": 0.6}}}))
    after.write_text(json.dumps(_result(7.2, 0.52, clip_eta=0.55)))
    compare.main([f"{before},{extra}", str(after)])
    out = capsys.readouterr().out
    assert "| clips: eta RMSE vs teacher | 0.6000 | 0.5500 | -0.0500 |" in out
    assert "| FER: 5-NN on eta | 0.5300 | 0.5200 | -0.0100 |" in out
    assert "standard error: 0.0090 before, 0.0090 after" in out


def test_the_fer_change_is_also_counted_face_by_face():
    from training.evaluate_wild import pack_bits, separability

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    X = np.eye(3)[y] + rng.normal(0, 1.0, (400, 3))      # features that carry the label, noisily
    a = separability(X, y)
    b = separability(X + rng.normal(0, 0.02, X.shape), y)  # nearly the same reading
    before = {"wild:fer_heldout.npz": {"model_eta": a}}
    after = {"wild:fer_heldout.npz": {"model_eta": b}}
    p = compare.paired(before, after)
    assert p["n"] == 400 and p["change"] == pytest.approx(b["accuracy"] - a["accuracy"])
    assert p["change"] * 400 == p["only_after"] - p["only_before"]
    # shared faces and errors: the paired error is far below either accuracy's own
    assert p["se"] < 0.7 * a["accuracy_se"]
    assert "change face by face" in compare.table(before, after)
    # different faces (another count) are not paired
    after["wild:fer_heldout.npz"]["model_eta"] = {**b, "n": 399, "correct": pack_bits(np.ones(399, bool))}
    assert compare.paired(before, after) is None
