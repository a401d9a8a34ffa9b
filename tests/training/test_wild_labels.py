"""In-the-wild labels: the split, the pose fallback, and real files through real_to_samples."""
import numpy as np
import pytest

from training.euler_fit import closest_with_yaw, with_yaw
from training.wild_data import AFLW, FER
from training.wild_labels import BoxFallback, heldout, pair_iou
from workers.pose import euler_from_matrix, matrix_from_euler

DATA = AFLW.path.exists() and FER.path.exists()


def test_split_is_fixed_by_seed_disjoint_by_image_and_about_a_tenth():
    names = np.array([f"image{i:05d}.jpg" for i in range(6000)] + ["image00007.jpg"] * 3)
    h = heldout(names, seed=13, frac=0.1)
    assert 0.08 < h.mean() < 0.12
    assert np.array_equal(h, heldout(names, seed=13, frac=0.1))            # reproducible
    assert np.array_equal(h[::-1], heldout(names[::-1], seed=13, frac=0.1))  # order-free
    assert len(set(h[names == "image00007.jpg"])) == 1                     # one image, one side
    assert not np.array_equal(h, heldout(names, seed=14, frac=0.1))
    assert not set(names[h]) & set(names[~h])


def test_closest_rotation_of_a_given_yaw():
    rng = np.random.default_rng(0)
    E = np.c_[rng.uniform(-80, 80, 50), rng.uniform(-40, 40, 50), rng.uniform(-40, 40, 50)]
    R = np.stack([matrix_from_euler(*e) for e in E])
    assert np.abs(closest_with_yaw(R, E[:, 0]) - E).max() < 1e-6
    # a profile whose yaw is to change: no (pitch, roll) on a 2-degree grid comes closer
    target = matrix_from_euler(-69, 72, 87)
    got = closest_with_yaw(target[None], [-89.0])[0]
    grid = min(_geodesic(matrix_from_euler(-89, p, r), target)
               for p in range(-180, 180, 2) for r in range(-180, 180, 2))
    assert got[0] == -89 and _geodesic(matrix_from_euler(*got), target) <= grid + 1e-6


def _geodesic(A, B):
    return np.degrees(np.arccos(np.clip((np.trace(A.T @ B) - 1) / 2, -1, 1)))


def test_shrink_settles_profile_pitch_and_roll_and_leaves_other_poses_alone():
    # near +90 of yaw, pitch and roll of opposite signs cancel: R is nearly a plain profile
    R = matrix_from_euler(86, 30, -30)
    got = with_yaw(R[None], [86.0])[0]
    assert abs(got[1]) + abs(got[2]) < 8 and _geodesic(matrix_from_euler(*got), R) < 3
    for e in [(10, 20, -15), (-40, -30, 25), (55, 15, 10), (80, 50, 45)]:   # determined angles
        got = with_yaw(matrix_from_euler(*e)[None], [e[0]])[0]
        assert np.abs(got - e).max() < 0.08 * np.abs(e).max(), (e, got)


def test_box_fallback_is_the_median_detector_box_per_bin():
    det = np.array([[10, 10, 50, 60], [12, 10, 52, 60], [np.nan] * 4, [0, 0, 30, 30], [2, 2, 32, 32]])
    bins = np.array([0, 0, 0, 1, 1])
    fb = BoxFallback.fit(det, bins, 2, 100.0)     # under 5 faces in a bin: the overall median
    fb = BoxFallback.fit(np.repeat(det, 5, 0), np.repeat(bins, 5), 2, 100.0)
    assert np.allclose(fb.predict(np.array([0, 1])), [[11, 10, 51, 60], [1, 1, 31, 31]])
    assert np.allclose(pair_iou(fb.predict(np.array([0])), np.array([[11, 10, 51, 60.0]])), 1)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Label files for the first 60 AFLW and 60 FER rows, through the real teachers."""
    if not DATA:
        pytest.skip("AFLW or FER not in ../shared")
    pytest.importorskip("mediapipe")
    from training.wild_labels import build

    out = tmp_path_factory.mktemp("labels")
    parts = out / "parts"
    return {s.name: build(s, out, parts, seed=13, frac=0.3, limit=60) for s in (AFLW, FER)}


def test_files_hold_every_face_once_split_by_image(built):
    for paths in built.values():
        tr, ho = np.load(paths["train"]), np.load(paths["heldout"])
        assert len(tr["frame"]) + len(ho["frame"]) == 60 and len(ho["frame"]) > 5
        assert sorted(np.r_[tr["frame"], ho["frame"]]) == list(range(60))
        assert not set(tr["name"]) & set(ho["name"])
        assert str(tr["split"]) == "train" and str(ho["split"]) == "heldout"
        assert tr["crop"].shape[1:] == (160, 160, 3) and tr["crop"].dtype == np.uint8


def test_files_round_trip_through_real_to_samples(built):
    from training.data import real_to_samples

    for paths in built.values():
        d = np.load(paths["train"])
        s = real_to_samples(paths["train"])
        keep = d["keep"]
        assert len(s["crop"]) == keep.sum() > 20
        assert np.array_equal(s["lm"][:, d["lm9_ids"]], d["lm9"][keep])
        assert s["lm_mask"][:, d["lm9_ids"]].all() and s["lm_mask"].sum() == 9 * keep.sum()
        assert np.array_equal(s["blend_mask"], d["blend_mask"][keep])
        assert np.allclose([euler_from_matrix(r) for r in s["rot"]], d["euler"][keep], atol=1e-3)
        assert (s["blend"][~s["blend_mask"]] == 0).all()
        assert np.isfinite(s["centre"]).all() and (s["scale"] > 0).all()


def test_aflw_labels_follow_the_rules(built):
    d = np.load(built["aflw"]["train"])
    src = d["pose_source"]
    assert set(src) <= {"mediapipe", "mediapipe+aflw_yaw", "3ddfa+aflw_yaw"} and "mediapipe" in set(src)
    from_aflw = src != "mediapipe"
    assert np.allclose(d["euler"][from_aflw, 0], d["aflw_yaw"][from_aflw], atol=1e-3)
    assert np.array_equal(d["blend_mask"], np.isin(src, ["mediapipe", "mediapipe+aflw_yaw"]))
    assert (d["trust_expr"][~d["blend_mask"]] == 0).all() and (d["trust_pose"] > 0).all()
    # AFLW's hand-placed points are taken where it has them, in context-crop pixels
    placed = d["lm9_source"] == "aflw"
    assert placed.mean() > 0.5
    k = list(d["lm9_ids"]).index(36)
    has = np.isfinite(d["aflw_pts21"][:, 6, 0])
    assert np.allclose(d["lm9"][has, k], d["aflw_pts21"][has, 6])


def test_context_crops_and_labels_share_pixels(built):
    """The context crop shows the frame where the labels say: sampling the original frame
    at a label's frame position and the crop at its context position gives one colour."""
    d = np.load(built["aflw"]["train"])
    frames = AFLW.read(0, 60)["image"][d["frame"]]
    box = d["box"]
    side = (box[:, 2:] - box[:, :2]).max(1) * 1.5 * 1.25          # inference crop x CTX_FACTOR
    corner = (box[:, :2] + box[:, 2:]) / 2 - side[:, None] / 2
    diffs = []
    for i in range(len(frames)):
        for p in d["lm68_3ddfa"][i][::4]:
            q = corner[i] + p * side[i] / 160                         # context -> frame pixels
            u, v = (p - 0.5).astype(int), (q - 0.5).astype(int)
            if 2 < v[0] < 117 and 2 < v[1] < 117:
                diffs.append(np.abs(d["crop"][i, u[1], u[0]].astype(int) - frames[i][v[1], v[0]].astype(int)).mean())
    assert len(diffs) > 100 and np.median(diffs) < 12, np.median(diffs)


def test_fer_labels_carry_the_emotion_and_drop_frames_nobody_calls_a_face(built):
    d = np.load(built["fer"]["train"])
    assert np.array_equal(d["emotion"], FER.read(0, 60, images=False)["emotion"][d["frame"]])
    assert set(d["emotion"]) <= set(d["emotion_names"])
    assert set(d["pose_source"]) <= {"mediapipe", "3ddfa"}
    assert np.isnan(d["aflw_yaw"]).all()
    nobody = (d["box_source"] == "fallback") & (d["blend_source"] == "none")
    assert not d["keep"][nobody].any()
