"""workers/training/compare.py: the headline numbers of two evaluate results, side by side."""
from __future__ import annotations

import json

from workers.training import compare


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
