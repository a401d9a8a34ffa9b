"""The in-the-wild evaluation's arithmetic, on faces and features whose answers are known
by construction, and its wiring into ``facestream evaluate`` (JSON, checkpoint, plot)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training import evaluate
from training import evaluate_wild as ew
from training.data import AugmentConfig, augment
from training.wild_data import AFLW21_TO_68, COMMON68, EMOTIONS
from workers import checkpoint, face_model
from workers.crops import CropRule
from workers.mirror import blend_mirror
from workers.networks import FaceRegressor
from workers.pose import euler_from_matrix, matrix_from_euler

# six faces: two per |yaw| bin (the last one annotated beyond 90 degrees, as AFLW has)
YAW = np.array([10.0, -20.0, 40.0, -50.0, 70.0, 100.0])
MODEL_YAW_ERR = np.array([1.0, 2.0, 3.0, 5.0, 8.0, 10.0])
MP_FOUND = np.array([True, True, True, False, True, False])
MP_YAW_ERR = np.array([2.0, 4.0, 6.0, np.nan, 30.0, np.nan])
DD_YAW_ERR = np.array([3.0, 3.0, 4.0, 4.0, 5.0, 7.0])


def _faces(n=len(YAW), seed=0):
    """Extras as ``evaluate_wild.load`` gives them, in context pixels."""
    rng = np.random.default_rng(seed)
    pts21 = rng.uniform(40, 120, (n, 21, 2))
    pts21[0, 6] = np.nan                       # a point AFLW did not place
    label = np.c_[YAW[:n], rng.uniform(-20, 20, n), rng.uniform(-20, 20, n)]
    lm68 = np.zeros((n, 68, 2))
    for a, j in AFLW21_TO_68.items():
        lm68[:, j] = np.nan_to_num(pts21[:, a], nan=80)
    mp = np.full((n, 3), np.nan)
    mp[MP_FOUND[:n], 0] = (YAW + MP_YAW_ERR)[:n][MP_FOUND[:n]]
    return {"aflw_yaw": YAW[:n].astype(np.float32), "aflw_pts21": pts21, "euler": label,
            "euler_mediapipe": mp, "euler_3ddfa": np.c_[YAW[:n] - DD_YAW_ERR[:n], np.zeros((n, 2))],
            "lm68_3ddfa": lm68 + [0, 6],
            "box_source": np.array(["retinaface"] * (n - 1) + ["fallback"])[:n]}, lm68


def test_aflw_errors_come_out_per_bin_exactly():
    ex, lm68 = _faces()
    pred = ex["euler"].copy()
    pred[:, 0] = YAW + MODEL_YAW_ERR           # the label's yaw is AFLW's here
    pred[:, 1] -= 2.0                          # pitch 2 off the teacher label, roll exact
    res, arrays = ew.aflw_metrics(pred, lm68 + [3, 4], ex, face=np.full(6, 50.0))
    assert list(res) == ["0-30", "30-60", "60-90", "all"]
    assert [res[b]["faces"] for b in res] == [2, 2, 2, 6]
    model = {b: r["model"] for b, r in res.items()}
    assert np.allclose([model[b]["yaw_mae_vs_aflw"] for b in res], [1.5, 4.0, 9.0, 29 / 6])
    assert np.allclose([model[b]["pose_mae_vs_label"]["pitch"] for b in res], 2.0)
    assert np.allclose([model[b]["pose_mae_vs_label"]["roll"] for b in res], 0.0)
    assert np.isclose(model["all"]["pose_mae_vs_label"]["mean"], (29 / 6 + 2) / 3)
    # MediaPipe: found where found, its error there, and the model's error on those faces
    mp = {b: r["mediapipe"] for b, r in res.items()}
    assert [mp[b]["found"] for b in res] == [1.0, 0.5, 0.5, 4 / 6]
    assert np.allclose([mp[b]["yaw_mae_vs_aflw"] for b in res], [3.0, 6.0, 30.0, 42 / 4])
    assert np.allclose([model[b]["yaw_mae_vs_aflw_on_mediapipe_faces"] for b in res], [1.5, 3.0, 8.0, 14 / 4])
    # landmarks 5 px off on a 50 px face = 10 %; 3DDFA_V2 6 px off = 12 %, on every point set
    for key in ("nme_aflw14", "nme_common8"):
        assert np.isclose(model["all"][key], 10.0) and np.isclose(res["all"]["3ddfa_v2"][key], 12.0)
    assert np.allclose([res[b]["3ddfa_v2"]["yaw_mae_vs_aflw"] for b in res], [3.0, 4.0, 6.0, 26 / 6])
    assert np.isnan(arrays["mediapipe_yaw"][3]) and np.allclose(arrays["model_yaw"], YAW + MODEL_YAW_ERR)
    # RetinaFace found all but the last face (a fallback box)
    assert [model[b]["detector_found"] for b in res] == [1.0, 1.0, 0.5, 5 / 6]
    table = ew.markdown({"yaw_bins": res})
    assert table.count("\n") == 5 and "| 60-90 | 2 | 50.0% | 9.0 |" in table


def test_faces_without_placed_points_have_no_nme_and_yaw_wraps():
    ex, lm68 = _faces()
    to21 = {v: k for k, v in AFLW21_TO_68.items()}
    ex["aflw_pts21"][5, [to21[j] for j in COMMON68]] = np.nan   # none of the eight placed
    pred = ex["euler"].copy()
    pred[5, 0] = -170.0                                           # 100 vs -170: 90 apart
    res, _ = ew.aflw_metrics(pred, lm68 + [3, 4], ex, face=50.0)
    assert np.isclose(res["60-90"]["model"]["yaw_mae_vs_aflw"], (0 + 90) / 2)   # face 4 exact
    assert np.isclose(res["60-90"]["model"]["nme_common8"], 10.0)   # the other face only
    assert np.isclose(res["60-90"]["model"]["nme_aflw14"], 10.0)    # still has six points


def test_a_face_turned_beyond_90_degrees_predicted_exactly_has_no_error():
    """The decoder writes yaw 100 as yaw 80 with pitch and roll near 180; compared in the
    plausible form, an exact prediction is exact."""
    ex, lm68 = _faces()
    decoded = np.array([euler_from_matrix(matrix_from_euler(*e)) for e in ex["euler"]])
    assert np.isclose(decoded[5, 0], 80) and abs(decoded[5, 1]) > 90      # the decoder's form
    ex["euler_3ddfa"] = decoded.copy()
    res, arrays = ew.aflw_metrics(decoded, lm68, ex, face=50.0)
    assert np.isclose(res["all"]["model"]["yaw_mae_vs_aflw"], 0, atol=1e-6)
    assert np.isclose(res["all"]["model"]["pose_mae_vs_label"]["mean"], 0, atol=1e-6)
    assert np.isclose(res["all"]["3ddfa_v2"]["yaw_mae_vs_aflw"], 0, atol=1e-6)
    assert np.isclose(arrays["model_yaw"][5], 100)
    twin = ew.plausible_euler(np.array([[80.0, 170.0, -175.0], [np.nan] * 3, [10.0, 5.0, -3.0]]))
    assert np.allclose(twin[0], [100, -10, 5]) and np.isnan(twin[1]).all() and np.allclose(twin[2], [10, 5, -3])


def test_landmarks_map_back_to_context_pixels_as_augment_maps_them():
    """The network sees the centre 1/CTX_FACTOR of the context crop: predictions in its
    pixels must land where augment (train=False) put the labels."""
    rng = np.random.default_rng(1)
    n, size = 3, 120
    lm = rng.uniform(30, 130, (n, 68, 2)).astype(np.float32)
    batch = {"crop": np.zeros((n, 160, 160, 3), np.uint8), "blend": np.zeros((n, 53), np.float32),
             "rot": np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)), "centre": lm[:, 30],
             "scale": np.ones(n, np.float32), "lm": lm, "lm_mask": np.ones((n, 68), bool),
             "shape": np.zeros((n, 99), np.float32), "shape_mask": np.zeros(n, bool)}
    names = face_model.load().blend_names
    _, lab = augment(batch, size, rng, AugmentConfig(), blend_mirror(names), torch.zeros(29, 53), train=False)
    net_px = (lab["lm"].numpy() + 1) / 2 * size
    assert np.allclose(ew.input_to_context(net_px, size, 160), lm, atol=1e-3)


def test_face_size_follows_the_context_crop():
    # a 64 px box: context side 64 * 1.5 * 1.25 = 120 AFLW pixels over 160 context pixels
    face = ew.face_px_in_context(np.array([[10.0, 20.0, 74.0, 84.0]]), 160)
    assert np.allclose(face, 120 / 1.58 / 0.75)


def _clusters(n_per, classes, dims, spread, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (len(classes), dims))
    X = np.concatenate([c + rng.normal(0, spread, (n_per, dims)) for c in centres])
    return X, np.repeat(np.array(classes), n_per)


def test_knn_separates_clusters_and_is_at_chance_on_shuffled_labels():
    X, y = _clusters(40, list(EMOTIONS), 29, 0.5, 0)
    r = ew.separability(X, y)
    assert r["accuracy"] == 1.0 and r["macro_f1"] == 1.0 and r["n"] == 280 and r["dims"] == 29
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(1200, 10)), np.repeat(["a", "b", "c", "d"], 300)
    assert r["accuracy_se"] == 0.0
    r = ew.separability(X, rng.permutation(y))
    assert abs(r["accuracy"] - 0.25) < 0.05
    assert r["accuracy_se"] == pytest.approx(np.sqrt(r["accuracy"] * (1 - r["accuracy"]) / 1200))


def test_knn_leaves_the_face_out_and_breaks_ties_by_the_nearest():
    # the face at 0 has neighbours a(1) b(2) b(3) a(4) c(5): a and b tie, a is nearer
    X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [100.0]])
    y = np.array(["z", "a", "b", "b", "a", "c", "c"])
    assert ew.knn_loo(X, y)[0] == "a"          # never "z", its own label
    X[[1, 4], 0] = [4.0, 1.0]                  # same tie, but a's nearest is still at 1
    assert ew.knn_loo(X, y)[0] == "a"
    X[:, 0] = [0, 3, 1, 2, 4, 5, 100]          # now b holds the two nearest
    assert ew.knn_loo(X, y)[0] == "b"


def test_macro_f1_and_standardising():
    f1, per = ew.macro_f1(np.array(["a", "a", "b", "b"]), np.array(["a", "b", "b", "b"]))
    assert np.isclose(per["a"], 2 / 3) and np.isclose(per["b"], 0.8) and np.isclose(f1, (2 / 3 + 0.8) / 2)
    Z = ew.standardise(np.c_[np.arange(5.0), np.full(5, 3.0)])
    assert np.allclose(Z[:, 0].std(), 1) and np.allclose(Z[:, 1], 0)


def test_emotion_metrics_compare_on_the_teachers_faces():
    X, y = _clusters(20, list(EMOTIONS), 29, 0.5, 3)
    mask = np.arange(len(y)) % 2 == 0
    blend = np.random.default_rng(4).uniform(0, 1, (len(y), 53))      # no emotion in it
    r = ew.emotion_metrics(X, X, blend, mask, y)
    assert r["model_eta"]["n"] == 140 and r["teacher_eta"]["n"] == 70
    assert r["model_eta"]["accuracy"] == 1.0 and r["model_eta_on_mediapipe_faces"]["accuracy"] == 1.0
    assert r["mediapipe_blendshapes"]["accuracy"] < 0.4
    assert np.isclose(r["chance"]["majority"], 1 / 7) and np.isclose(r["chance"]["prior_matched"], 1 / 7)
    assert "| MediaPipe blendshapes | 70 | 53 |" in ew.emotion_markdown(r)


def _label_file(path, ex, emotion=None, seed=0):
    """A label file in wild_labels' layout (only what the evaluation reads)."""
    n = len(ex["aflw_yaw"])
    rng = np.random.default_rng(seed)
    ids = np.array([8, 27, 30, 36, 39, 42, 45, 48, 54])
    np.savez(path, crop=rng.integers(0, 255, (n, 160, 160, 3), dtype=np.uint8),
             blend=rng.uniform(0, 1, (n, 53)).astype(np.float32), blend_mask=np.ones(n, bool),
             euler=ex["euler"].astype(np.float32), keep=np.ones(n, bool), trust_pose=np.ones(n, np.float32),
             lm9=np.full((n, 9, 2), 80, np.float32), lm9_ids=ids, centre=np.full((n, 2), 80, np.float32),
             scale=np.ones(n, np.float32), box=np.tile([[10.0, 20.0, 74.0, 84.0]], (n, 1)).astype(np.float32),
             emotion=np.array(emotion if emotion is not None else [""] * n),
             **{k: np.asarray(ex[k], np.float32) for k in ("aflw_yaw", "aflw_pts21", "euler_mediapipe",
                                                         "euler_3ddfa", "lm68_3ddfa")})


def test_evaluate_writes_the_wild_numbers_to_json_checkpoint_and_plot(tmp_path):
    torch.manual_seed(0)
    meta = {"name": "t", "trained": True, **CropRule(size=64).to_meta(), "face_model": face_model.load().meta()}
    ckpt = checkpoint.save(FaceRegressor("tiny").eval(), meta, tmp_path / "c")
    ex, _ = _faces()
    _label_file(tmp_path / "aflw_heldout.npz", ex)
    _label_file(tmp_path / "fer_heldout.npz", ex, emotion=np.array(EMOTIONS)[[0, 1, 2, 0, 1, 2]])
    out = tmp_path / "report" / "accuracy.json"
    evaluate.main(["--checkpoint", str(ckpt), "--renders", "--real", "--jitter-photo", "",
                   "--wild", str(tmp_path / "aflw_heldout.npz"), "--wild-emotion", str(tmp_path / "fer_heldout.npz"),
                   "--out", str(out), "--into-checkpoint"])
    res = json.loads(out.read_text())
    aflw, fer = res["wild:aflw_heldout.npz"], res["wild:fer_heldout.npz"]
    assert aflw["faces"] == 6 and np.isclose(aflw["yaw_bins"]["all"]["3ddfa_v2"]["yaw_mae_vs_aflw"], 26 / 6)
    assert np.isclose(aflw["yaw_bins"]["all"]["mediapipe"]["found"], 4 / 6)
    # 3DDFA_V2's points are 6 px off in context pixels; the face is 120/1.58/0.75 of them
    assert np.isclose(aflw["yaw_bins"]["all"]["3ddfa_v2"]["nme_common8"], 100 * 6 / (120 / 1.58 / 0.75), rtol=1e-4)
    assert fer["model_eta"]["n"] == 6 and fer["counts"]["angry"] == 2
    stored = json.loads(ckpt.with_suffix(".json").read_text())["evaluation"]["facestream_evaluate"]
    # every number travels with the checkpoint; which faces were right stays in the JSON file
    assert stored["wild:aflw_heldout.npz"] == aflw
    assert {k: {f: x for f, x in v.items() if f != "correct"} if isinstance(v, dict) else v
            for k, v in fer.items()} == stored["wild:fer_heldout.npz"]
    assert "correct" in fer["model_eta"] and "correct" not in stored["wild:fer_heldout.npz"]["model_eta"]
    assert (tmp_path / "report" / "img" / "wild_yaw.png").stat().st_size > 10_000


@pytest.mark.parametrize("skip", ["--wild", "--wild-emotion"])
def test_wild_parts_are_skipped_when_asked(tmp_path, skip):
    meta = {"name": "t", "trained": True, **CropRule(size=64).to_meta(), "face_model": face_model.load().meta()}
    ckpt = checkpoint.save(FaceRegressor("tiny").eval(), meta, tmp_path / "c")
    ex, _ = _faces()
    _label_file(tmp_path / "aflw_heldout.npz", ex)
    _label_file(tmp_path / "fer_heldout.npz", ex, emotion=np.array(EMOTIONS)[[0, 1, 2, 0, 1, 2]])
    args = {"--wild": str(tmp_path / "aflw_heldout.npz"), "--wild-emotion": str(tmp_path / "fer_heldout.npz")}
    args[skip] = ""
    out = tmp_path / "a.json"
    evaluate.main(["--checkpoint", str(ckpt), "--renders", "--real", "--jitter-photo", "", "--out", str(out),
                   "--wild-plot", "", *[x for kv in args.items() for x in kv]])
    keys = {k for k in json.loads(out.read_text()) if k.startswith("wild:")}
    assert keys == ({"wild:fer_heldout.npz"} if skip == "--wild" else {"wild:aflw_heldout.npz"})
    assert not (tmp_path / "img").exists()


def test_one_view_evaluates_as_a_camera_reads_and_never_into_the_checkpoint(tmp_path):
    """A checkpoint that asks for mirror averaging is evaluated averaged; --one-view gives
    the numbers of a live camera's one-view reading, and cannot overwrite the headline."""
    torch.manual_seed(0)
    meta = {"name": "t", "trained": True, **CropRule(size=64).to_meta(), "face_model": face_model.load().meta(),
            "inference": {"mirror_average": True}}
    ckpt = checkpoint.save(FaceRegressor("tiny").eval(), meta, tmp_path / "c")
    ex, _ = _faces()
    _label_file(tmp_path / "aflw_heldout.npz", ex)
    common = ["--checkpoint", str(ckpt), "--renders", "--real", "--jitter-photo", "", "--wild-plot", "",
              "--wild", str(tmp_path / "aflw_heldout.npz"), "--wild-emotion", ""]
    evaluate.main([*common, "--out", str(tmp_path / "averaged.json")])
    evaluate.main([*common, "--out", str(tmp_path / "one.json"), "--one-view"])
    averaged, one = (json.loads((tmp_path / f).read_text()) for f in ("averaged.json", "one.json"))
    assert (averaged["reading"], one["reading"]) == ("mirror_average", "one_view")   # as streams say it
    yaw = [r["wild:aflw_heldout.npz"]["yaw_bins"]["all"]["model"]["yaw_mae_vs_aflw"] for r in (averaged, one)]
    assert yaw[0] != yaw[1]
    with pytest.raises(SystemExit) as stop:
        evaluate.main([*common, "--out", str(tmp_path / "x.json"), "--one-view", "--into-checkpoint"])
    assert stop.value.code == 2
