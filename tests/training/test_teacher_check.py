"""The teacher check's arithmetic, on faces whose errors are known by construction."""
import numpy as np

from training.teacher import PARTIAL68
from training.teacher_check import aflw_common, check, markdown, nme
from training.wild_data import AFLW21_TO_68, COMMON68
from workers.pose import matrix_from_euler


def _faces():
    """Four faces at yaw 10, 20, 45, 75; MediaPipe finds the first three with yaw +2 off,
    3DDFA is 4 off everywhere; landmarks: MediaPipe 1 px off in x, 3DDFA 2 px off in y."""
    yaw = np.array([10.0, -20.0, 45.0, 75.0])
    rng = np.random.default_rng(0)
    pts21 = rng.uniform(20, 100, (4, 21, 2))
    pts21[0, 6] = np.nan                                  # one point AFLW did not place
    truth68 = np.zeros((4, 68, 2))
    for a, j in AFLW21_TO_68.items():
        truth68[:, j] = np.nan_to_num(pts21[:, a], nan=60)
    found = np.array([True, True, True, False])
    raw = {"mp_found": found,
           "mp_rot": np.stack([matrix_from_euler(y + 2, 0, 0) for y in yaw]),
           "mp_lm9": truth68[:, PARTIAL68] + [1, 0],
           "det_box": np.array([[0, 0, 10, 10]] * 3 + [[np.nan] * 4])}
    dd = {"euler": np.c_[yaw - 4, np.zeros(4), np.zeros(4)], "lm68": truth68 + [0, 2]}
    return raw, dd, {"yaw": yaw, "pts21": pts21}


def test_rows_by_yaw_bin():
    raw, dd, meta = _faces()
    rows = {r["bin"]: r for r in check(raw, dd, meta, np.array([0.9, 0.8, 0.7, np.nan]))}
    face = 120 / 1.58
    assert rows["0-30"]["faces"] == 2 and rows["60-90"]["mediapipe_found"] == 0
    assert np.isclose(rows["all"]["yaw_mae_mediapipe"], 2) and np.isclose(rows["all"]["yaw_mae_3ddfa_all"], 4)
    assert np.isclose(rows["all"]["nme_mediapipe"], 100 / face) and np.isclose(rows["all"]["nme_3ddfa_all"], 200 / face)
    assert rows["all"]["retinaface_found"] == 0.75 and np.isclose(rows["0-30"]["fallback_box_iou"], 0.85)
    table = markdown(list(rows.values()))
    assert table.count("\n") == 5 and "| 60-90 | 1 |" in table


def test_nme_ignores_unplaced_points():
    truth = np.array([[[0.0, 0.0], [np.nan, np.nan], [10.0, 0.0]]])
    pred = np.array([[[3.0, 4.0], [100.0, 100.0], [10.0, 0.0]]])
    assert np.allclose(nme(pred, truth, face=10.0), [25.0])        # (5 + 0) / 2 / 10
    assert aflw_common(np.zeros((2, 21, 2))).shape == (2, len(COMMON68), 2)
