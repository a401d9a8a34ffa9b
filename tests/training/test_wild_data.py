"""Reading AFLW and FER: AFLW's unplaced-point sentinel and the order of its 21 points."""
import numpy as np
import pytest

from training.wild_data import AFLW, FER, aflw_points, yaw_bin

pytestmark = pytest.mark.skipif(not (AFLW.path.exists() and FER.path.exists()),
                                reason="AFLW or FER not in ../shared")


def test_unplaced_points_are_nan_not_the_files_sentinel():
    roi = np.array([[98.0, 132.0, 386.0, 420.0]])               # 288 px square
    pts = np.full((1, 42), 50.0)
    pts[0, 10:12] = (-1 - 98) * 120 / 288, 133.3                 # AFLW's x = -1, carried over
    p = aflw_points(pts, roi)
    assert np.isnan(p[0, 5]).all() and np.isfinite(np.delete(p[0], 5, axis=0)).all()


def test_the_21_points_are_in_the_readme_order_on_frontal_faces():
    d = AFLW.read(0, 200, images=False)
    p = d["pts21"][np.abs(d["yaw"]) < 20]
    assert len(p) > 50

    def before(axis, i, j):  # share of faces with point i before point j, where both are placed
        a, b = p[:, i, axis], p[:, j, axis]
        ok = np.isfinite(a) & np.isfinite(b)
        assert ok.sum() >= 10
        return (a[ok] < b[ok]).mean()

    x, y = 0, 1
    for i, j in ((6, 8), (8, 9), (9, 11), (0, 2), (3, 5), (13, 15), (17, 19), (12, 16)):
        assert before(x, i, j) > 0.95, (i, j)          # image left to image right
    for i, j in ((1, 7), (7, 14), (14, 18), (18, 20)):
        assert before(y, i, j) > 0.95, (i, j)          # brow, eye, nose tip, mouth, chin


def test_rows_read_the_same_way_in_chunks_and_whole():
    whole = FER.read(0, 30)
    parts = [FER.read(0, 12), FER.read(12, 30)]
    assert whole["image"].shape == (30, 48, 48, 3)
    assert np.array_equal(whole["image"], np.concatenate([p["image"] for p in parts]))
    assert list(whole["name"]) == [n for p in parts for n in p["name"]]
    assert set(whole["emotion"]) <= {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}


def test_yaw_bins_put_beyond_90_in_the_last():
    assert list(yaw_bin([0, -29.9, 30, 59, -60, 95])) == [0, 0, 1, 1, 2, 2]
