"""The smoother's outlier gate on trajectories with a known truth: mirror flips and doubted
crops leave the published values where the face is; real motion, however fast a head
turns, is followed as before."""
from __future__ import annotations

import numpy as np
import pytest

from streamer.config import SmoothingConfig
from streamer.pipeline.outliers import AcceptAll, OutlierGate, Verdict, rotation_angle_deg
from streamer.pipeline.smoothing import SmootherBank, TrackSmoother, gate_for
from workers.pose import euler_from_matrix, matrix_from_euler, matrix_from_quaternion, quaternion_from_matrix

FPS = 30.0
EXPRESSION = np.zeros(29)
SHAPE = np.zeros(99)


def quat(yaw: float, pitch: float = -10.0, roll: float = 2.0) -> np.ndarray:
    return quaternion_from_matrix(matrix_from_euler(yaw, pitch, roll))


def yaw_of(q: np.ndarray) -> float:
    return float(euler_from_matrix(matrix_from_quaternion(q))[0])


def run(smoother: TrackSmoother, yaws: list[float], trusted: list[bool] | None = None,
        expressions: list[np.ndarray] | None = None) -> list:
    out = []
    for i, y in enumerate(yaws):
        out.append(smoother.update(i / FPS, EXPRESSION if expressions is None else expressions[i], quat(y),
                                   [640.0, 360.0, 8.0], SHAPE, np.full(7, 1 / 7),
                                   trusted=True if trusted is None else trusted[i]))
    return out


def test_rotation_angle_is_geodesic_and_sign_free():
    assert rotation_angle_deg(quat(0), quat(30)) == pytest.approx(30.0, abs=1e-6)
    assert rotation_angle_deg(quat(10), -quat(10)) == pytest.approx(0.0, abs=1e-5)


def test_alternating_mirror_flips_are_held_and_the_published_yaw_stays_on_the_face():
    # the crowd's turned face: -50, +53, -49, +48 ... in successive frames
    yaws = [-50.0] * 10 + [53.0, -49.0, 48.0, -51.0, 52.0, -50.0, 50.0, -49.0]
    gated = [yaw_of(s.quaternion) for s in run(TrackSmoother(SmoothingConfig(), OutlierGate()), yaws)]
    plain = [yaw_of(s.quaternion) for s in run(TrackSmoother(SmoothingConfig(), AcceptAll()), yaws)]
    assert max(abs(y + 50.0) for y in gated) < 1.5
    assert max(abs(y + 50.0) for y in plain) > 20.0   # what the gate prevents: a swing towards +50


def test_every_head_turn_a_head_can_make_is_followed_as_before():
    # a fast shake: 0 -> 60 degrees and back in 0.3 s (400 degrees/s), then a still face
    yaws = list(np.concatenate([np.linspace(0, 60, 5), np.linspace(60, 0, 5), np.zeros(10)]))
    gate = OutlierGate()
    gated = [s.quaternion for s in run(TrackSmoother(SmoothingConfig(), gate), yaws)]
    plain = [s.quaternion for s in run(TrackSmoother(SmoothingConfig(), AcceptAll()), yaws)]
    assert gate.held == 0
    np.testing.assert_allclose(gated, plain)


def test_a_change_that_persists_is_taken_up_after_confirm_readings():
    # a face that turned while occluded: -40 then +40 for good
    gate = OutlierGate(confirm=3)
    out = run(TrackSmoother(SmoothingConfig(), gate), [-40.0] * 10 + [40.0] * 30)
    yaws = [yaw_of(s.quaternion) for s in out]
    assert gate.held == 2
    assert yaws[11] == pytest.approx(yaws[9])              # the first two held
    assert yaws[12] > yaws[11] + 5                         # the third moves it
    assert yaws[-1] == pytest.approx(40.0, abs=1.0)


def test_sparse_readings_may_change_more():
    # one reading a second (a stalled camera, --every 30): 90 degrees between two is no outlier
    gate = OutlierGate()
    smoother = TrackSmoother(SmoothingConfig(), gate)
    smoother.update(0.0, EXPRESSION, quat(-45), [0, 0, 8.0], SHAPE)
    smoother.update(1.0, EXPRESSION, quat(45), [0, 0, 8.0], SHAPE)
    assert gate.held == 0


def test_a_flip_after_doubted_readings_is_still_a_flip():
    # a profile face at -70, then ten followed crops that lost it (held), then the detector's
    # crop reads the face as its mirror image (+24) and the next ones as it is: the time the
    # doubted crops took is no evidence that the head turned
    yaws = [-70.0] * 10 + [-70.0] * 10 + [24.0, -71.0, -70.0]
    trusted = [True] * 10 + [False] * 10 + [True] * 3
    gate = OutlierGate()
    out = run(TrackSmoother(SmoothingConfig(), gate), yaws, trusted)
    assert gate.held == 11
    assert max(abs(yaw_of(s.quaternion) + 70.0) for s in out) < 1.0


def test_a_doubted_reading_changes_no_smoothed_value():
    smoother = TrackSmoother(SmoothingConfig(), OutlierGate())
    run(smoother, [-20.0] * 5)
    before = smoother.update(5 / FPS, EXPRESSION, quat(-20), [640.0, 360.0, 8.0], SHAPE, np.full(7, 1 / 7))
    after = smoother.update(6 / FPS, np.ones(29), quat(30), [900.0, 100.0, 4.0], np.ones(99),
                            np.eye(7)[3], trusted=False)
    for field in ("expression", "quaternion", "translation", "shape", "emotion_probs"):
        np.testing.assert_array_equal(getattr(after, field), getattr(before, field))
    # and the next trusted reading carries on from there, the doubted one left out of the shape's mean
    nxt = smoother.update(7 / FPS, EXPRESSION, quat(-20), [640.0, 360.0, 8.0], SHAPE, np.full(7, 1 / 7))
    np.testing.assert_array_equal(nxt.shape, SHAPE)
    assert yaw_of(nxt.quaternion) == pytest.approx(-20.0, abs=0.5)


def test_a_track_doubted_from_birth_is_smoothed_then_restarts_at_its_first_trusted_reading():
    smoother = TrackSmoother(SmoothingConfig(), OutlierGate())
    out = run(smoother, [70.0, 65.0, 60.0, -10.0], trusted=[False, False, False, True])
    assert yaw_of(out[1].quaternion) != pytest.approx(yaw_of(out[0].quaternion))   # followed: nothing better
    assert yaw_of(out[3].quaternion) == pytest.approx(-10.0, abs=1e-4)             # a fresh start
    np.testing.assert_array_equal(out[3].shape, SHAPE)


def test_gate_verdicts_and_config():
    gate = OutlierGate(jump_deg=None)
    assert gate.check(0.0, quat(0), True, None) is Verdict.ACCEPT
    assert gate.check(0.03, quat(170), True, quat(0)) is Verdict.ACCEPT    # no jump rule
    assert gate.check(0.06, quat(0), False, quat(0)) is Verdict.HOLD
    assert isinstance(gate_for(SmoothingConfig(rotation_jump_deg=0.0, hold_doubted=False)), AcceptAll)
    assert isinstance(gate_for(SmoothingConfig()), OutlierGate)
    with pytest.raises(ValueError):
        OutlierGate(confirm=0)


def test_the_bank_gives_every_track_its_own_gate():
    bank = SmootherBank()
    for i in range(10):
        bank.update(1, i / FPS, EXPRESSION, quat(-50), [0, 0, 8.0], SHAPE)
        bank.update(2, i / FPS, EXPRESSION, quat(50), [0, 0, 8.0], SHAPE)
    held = bank.update(1, 10 / FPS, EXPRESSION, quat(50), [0, 0, 8.0], SHAPE)
    other = bank.update(2, 10 / FPS, EXPRESSION, quat(50), [0, 0, 8.0], SHAPE)
    assert yaw_of(held.quaternion) == pytest.approx(-50.0, abs=1e-3)
    assert yaw_of(other.quaternion) == pytest.approx(50.0, abs=1e-3)
