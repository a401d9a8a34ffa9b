"""The label fitter checked where the truth is known: the teacher on renders.

Renders of the face model with known pose and expression go through the same teacher
mapping (MediaPipe → facestream frame and face model) that labels real frames.
"""
import numpy as np
import pytest

from training.real_labels import temporal_prior
from training.render import Camera, Scene, render
from training.teacher import mp_name_to_ict
from workers import face_model
from workers.pose import euler_from_matrix


def test_blendshape_names_map_onto_the_face_model():
    fm = face_model.load()
    assert mp_name_to_ict("mouthSmileLeft") == ["mouthSmile_L"]
    assert mp_name_to_ict("browInnerUp") == ["browInnerUp_L", "browInnerUp_R"]
    assert mp_name_to_ict("_neutral") == []
    assert all(n in fm.blend_names for n in mp_name_to_ict("jawOpen") + mp_name_to_ict("eyeBlinkRight"))


def _render(fm, yaw, pitch, roll, w):
    scene = Scene(eta=fm.eta_from_blendshapes(w), yaw=yaw, pitch=pitch, roll=roll,
                  t=np.array([0.0, 0.0, -90.0]))
    return render(fm, scene, Camera(320, 320, 900.0)).image


@pytest.fixture(scope="module")
def teacher():
    pytest.importorskip("mediapipe")
    from training.teacher import Teacher
    t = Teacher(face_model.load().blend_names, max_faces=1)
    yield t
    t.close()


def test_teacher_recovers_known_pose_on_renders(teacher):
    fm = face_model.load()
    poses = [(0, 0, 0), (25, 0, 0), (-25, 0, 0), (0, 15, 0), (0, -15, 0), (0, 0, 20), (15, -10, -15)]
    errs = []
    for p in poses:
        faces = teacher(_render(fm, *p, np.zeros(53)))
        assert faces, f"teacher found no face at pose {p}"
        errs.append(np.abs(np.array(euler_from_matrix(faces[0].rotation)) - p))
    errs = np.array(errs)
    assert errs.mean() < 6.0, errs          # same signs, same axes, a few degrees of error
    assert errs.max() < 15.0, errs


def test_teacher_recovers_jaw_opening_on_renders(teacher):
    fm = face_model.load()
    j = fm.blend_names.index("jawOpen")
    seen = []
    for v in (0.0, 0.5, 1.0):
        w = np.zeros(53); w[j] = v
        seen.append(teacher(_render(fm, 0, 0, 0, w))[0].blend53[j])
    assert seen[0] < seen[1] < seen[2], seen


def test_temporal_prior_removes_teacher_outliers():
    from workers.pose import matrix_from_euler
    t = np.arange(40)
    yaw = 20 * np.sin(t / 8)
    rot = np.stack([matrix_from_euler(y, 0, 0) for y in yaw])
    rot[17] = matrix_from_euler(yaw[17] + 40, 0, 0)          # a teacher failure
    blend = np.zeros((40, 53), np.float32)
    lab = temporal_prior({"rot": rot, "blend": blend, "frame": t})
    assert not lab["keep"][17] and lab["keep"].sum() == 39
    assert np.abs(lab["euler"][:, 0] - yaw)[lab["keep"]].max() < 2.0
