"""3DDFA_V2 as a teacher, checked on real AFLW crops (3DDFA-style ROIs) against AFLW's labels."""
import cv2
import numpy as np
import pytest

from training.teacher_3ddfa import Teacher3DDFA, roi_from_box
from training.wild_data import AFLW, AFLW21_TO_68
from workers.mobilenet import weights_path

pytestmark = pytest.mark.skipif(not (weights_path().exists() and AFLW.path.exists()),
                                reason="3DDFA_V2 weights or AFLW crops not in ../shared")


@pytest.fixture(scope="module")
def teacher():
    return Teacher3DDFA()


@pytest.fixture(scope="module")
def aflw():
    """The first 60 AFLW faces turned less than 60 degrees (3DDFA's reliable range)."""
    d = AFLW.read(0, 80)
    m = np.abs(d["yaw"]) < 60
    return {k: v[m][:60] for k, v in d.items()}


def test_roi_rule_is_3ddfa_v2s():
    roi = roi_from_box(np.array([[10, 20, 110, 140]]))[0]     # w 100, h 120: mean 110
    side = 1.58 * 110
    assert np.allclose(roi[2] - roi[0], side) and np.allclose(roi[3] - roi[1], side)
    assert np.allclose((roi[:2] + roi[2:]) / 2, [60, 80 + 0.14 * 110])


def test_yaw_agrees_with_aflw_on_real_crops(teacher, aflw):
    r = teacher.predict_crops(aflw["image"])
    err = np.abs(r.euler[:, 0] - aflw["yaw"])
    assert err.mean() < 8.0, err                 # AFLW's own yaw is ~5.5 deg from a dense fit
    assert np.corrcoef(r.euler[:, 0], aflw["yaw"])[0, 1] > 0.9
    assert np.allclose(np.linalg.det(r.rotation), 1, atol=1e-6)


def test_landmarks_land_on_aflws_hand_placed_points(teacher, aflw):
    r = teacher.predict_crops(aflw["image"])
    ids21, ids68 = zip(*AFLW21_TO_68.items())
    d = np.linalg.norm(r.landmarks[:, list(ids68)] - aflw["pts21"][:, list(ids21)], axis=-1)
    face = AFLW.frame / 1.58
    assert np.nanmedian(d) / face < 0.05, np.nanmedian(d)


def test_clockwise_turn_in_the_image_adds_to_roll(teacher, aflw):
    frontal = aflw["image"][np.abs(aflw["yaw"]) < 30][:20]
    m = cv2.getRotationMatrix2D((60, 60), -15, 1.0)              # cv2: positive = anticlockwise
    turned = np.stack([cv2.warpAffine(im, m, (120, 120)) for im in frontal])
    d_roll = teacher.predict_crops(turned).euler[:, 2] - teacher.predict_crops(frontal).euler[:, 2]
    assert abs(np.median(d_roll) - 15) < 3, d_roll


def test_rois_of_a_larger_image_give_image_pixels(teacher, aflw):
    crop = aflw["image"][0]
    canvas = np.zeros((400, 400, 3), np.uint8)
    canvas[51:291, 37:277] = cv2.resize(crop, (240, 240), interpolation=cv2.INTER_LINEAR)
    direct = teacher.predict_crops(crop[None])
    cut = teacher.predict_rois(canvas, np.array([[37, 51, 277, 291]]))
    assert np.abs(cut.landmarks[0] - (2 * direct.landmarks[0] + [37, 51])).mean() < 1.5
    assert abs(cut.scale[0] / direct.scale[0] - 2) < 0.05
    assert np.abs(cut.euler - direct.euler).max() < 2.0
