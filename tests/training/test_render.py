"""The synthetic renderer: labels must land on the rendered features, and signs must follow
the pose convention (workers/pose.py)."""
from __future__ import annotations

import numpy as np
import pytest

from training.render import EYEBALL, MOUTH, SKIN, Camera, Scene, rasterize, render
from workers import face_model

SIZE = 160
CAMERA = Camera(SIZE, SIZE, focal=600.0)


@pytest.fixture(scope="module")
def model():
    return face_model.load()


def _render(model, blend: dict | None = None, **pose):
    w = np.zeros(len(model.blend_names), np.float32)
    for name, value in (blend or {}).items():
        w[model.blend_names.index(name)] = value
    scene = Scene(eta=model.eta_from_blendshapes(w), t=np.array([0.0, 0.0, -100.0]), **pose)
    return render(model, scene, CAMERA)


def _pixel(uv):
    return int(np.floor(uv[1])), int(np.floor(uv[0]))


def test_rasterizer_covers_a_square_exactly_and_keeps_the_nearest():
    # Two triangles tile [10, 30]²: pixel centres 10.5 ... 29.5 inside, no crack on the
    # diagonal. A nearer triangle over part of it must win the depth test.
    uv = np.array([[10, 10], [30, 10], [30, 30], [10, 30], [5, 5], [25, 5], [5, 25]], np.float32)
    depth = np.array([50, 50, 50, 50, 20, 20, 20], np.float32)
    faces = np.array([[0, 2, 1], [0, 3, 2], [4, 6, 5]], np.int32)   # clockwise in (u, v)
    r = rasterize(uv, depth, faces, 40, 40)
    face = r.face.reshape(40, 40)
    covered = face >= 0
    expected = np.zeros((40, 40), bool)
    expected[10:30, 10:30] = True
    near = np.zeros((40, 40), bool)
    ii, jj = np.mgrid[0:40, 0:40]
    near[(jj >= 5) & (ii >= 5) & (jj + ii + 1 <= 30)] = True    # u + v <= 30 at centres
    assert np.array_equal(covered, expected | near)
    assert np.all(face[near] == 2)
    assert np.allclose(r.depth.reshape(40, 40)[expected & ~near], 50, rtol=1e-5)
    # Back faces (counter-clockwise in the image) are culled.
    assert (rasterize(uv, depth, faces[:, ::-1].copy(), 40, 40).face < 0).all()


def test_rasterizer_interpolates_inverse_depth_exactly():
    # A tilted plane: 1/depth is affine in (u, v) under perspective, so the z-buffer must
    # reproduce it at every pixel centre (and cover the quad without cracks).
    uv = np.array([[3.2, 4.1], [57.7, 2.9], [58.3, 61.6], [2.6, 60.2]], np.float32)
    plane = lambda u, v: 0.01 + 0.0001 * u - 0.00005 * v
    depth = (1.0 / plane(uv[:, 0], uv[:, 1])).astype(np.float32)
    faces = np.array([[0, 2, 1], [0, 3, 2]], np.int32)
    r = rasterize(uv, depth, faces, 64, 64)
    ii, jj = np.mgrid[0:64, 0:64]
    hit = r.face.reshape(64, 64) >= 0
    assert hit[8:56, 8:56].all()
    expected = 1.0 / plane(jj + 0.5, ii + 0.5)
    assert np.allclose(r.depth.reshape(64, 64)[hit], expected[hit], rtol=1e-4)


def test_frontal_landmarks_land_on_the_face(model):
    r = _render(model)
    assert r.image.shape == (SIZE, SIZE, 3) and r.image.dtype == np.uint8
    assert r.visible68.sum() >= 64
    for uv, vis in zip(r.landmarks2d, r.visible68):
        if vis:
            assert r.mask[_pixel(uv)]
    # The nose tip is the landmark nearest to the camera, in the labels and in the z-buffer.
    dist = -r.landmarks3d[:, 2]
    assert np.argmin(dist) == 30
    assert abs(r.depth[_pixel(r.landmarks2d[30])] - dist[30]) < 0.5


def test_eyes_are_eyeballs_darker_at_the_iris_than_the_cheek(model):
    r = _render(model)
    lum = r.image.astype(float).mean(axis=2)
    for eye in (slice(36, 42), slice(42, 48)):
        center = r.landmarks2d[eye].mean(axis=0)
        assert r.part[_pixel(center)] == EYEBALL
        cheek = center + [0.0, 12.0]
        assert r.part[_pixel(cheek)] == SKIN
        assert lum[_pixel(center)] < lum[_pixel(cheek)] - 30


def test_frontal_neutral_render_is_left_right_symmetric(model):
    r = _render(model)
    mirrored = r.mask[:, ::-1]
    iou = (r.mask & mirrored).sum() / (r.mask | mirrored).sum()
    assert iou > 0.98
    u = r.landmarks2d[:, 0]
    assert abs(u[30] - SIZE / 2) < 0.05
    assert abs((u[36] + u[45]) / 2 - SIZE / 2) < 0.05


@pytest.mark.parametrize("yaw, sign", [(40.0, -1), (-40.0, 1)])
def test_yaw_sign(model, yaw, sign):
    # AFLW: yaw > 0 turns the face toward the image's left, so the nose tip moves left of
    # the midpoint of the outer eye corners.
    lm = _render(model, yaw=yaw).landmarks2d
    offset = lm[30, 0] - 0.5 * (lm[36, 0] + lm[45, 0])
    assert np.sign(offset) == sign and abs(offset) > 3


def test_yaw_hides_the_far_side(model):
    r = _render(model, yaw=60.0)
    # Turned toward the image's left: the subject's right jaw (0-3) goes out of sight.
    assert not r.visible68[0:4].any()
    assert r.visible68[13:17].all()


def test_pitch_up_moves_the_nose_up(model):
    def nose_offset(r):
        ref = r.landmarks2d[[36, 45, 48, 54]].mean(axis=0)
        return r.landmarks2d[30, 1] - ref[1]

    assert nose_offset(_render(model, pitch=30.0)) < nose_offset(_render(model)) - 3


def test_roll_clockwise_lowers_the_image_right_eye(model):
    lm = _render(model, roll=20.0).landmarks2d
    # 45 is the subject's left outer eye corner, on the image's right in a frontal view.
    assert lm[45, 0] > lm[36, 0]
    assert lm[45, 1] > lm[36, 1] + 5
    frontal = _render(model).landmarks2d
    assert abs(frontal[45, 1] - frontal[36, 1]) < 0.05


def test_jaw_open_parts_the_lips_and_shows_the_mouth(model):
    closed = _render(model)
    opened = _render(model, blend={"jawOpen": 1.0})
    gap = lambda r: np.linalg.norm(r.landmarks2d[66] - r.landmarks2d[62])
    assert gap(opened) > gap(closed) + 5
    assert (opened.part == MOUTH).sum() > 30
    assert (closed.part == MOUTH).sum() < 5
