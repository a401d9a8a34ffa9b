"""Pose conventions: AFLW signs and round trips between Euler, matrix and quaternion."""
import numpy as np
import pytest
import torch

from workers.pose import (
    euler_from_matrix,
    matrix_from_6d,
    matrix_from_euler,
    matrix_from_quaternion,
    quaternion_from_matrix,
)


@pytest.mark.parametrize("angles", [(30, 0, 0), (0, 20, 0), (0, 0, 15), (40, -25, 10), (-85, 55, -40)])
def test_round_trips(angles):
    R = matrix_from_euler(*angles)
    assert np.allclose(euler_from_matrix(R), angles, atol=1e-6)
    q = quaternion_from_matrix(R)
    assert q[0] >= 0 and np.isclose(np.linalg.norm(q), 1)
    assert np.allclose(matrix_from_quaternion(q), R, atol=1e-9)
    d6 = torch.tensor(R[:, :2].T.reshape(-1), dtype=torch.float64)[None]
    assert np.allclose(matrix_from_6d(d6)[0].numpy(), R, atol=1e-9)


def test_signs_as_seen_in_the_image():
    nose = np.array([0, 0, 1.0])
    assert (matrix_from_euler(30, 0, 0) @ nose)[0] < 0      # yaw>0: toward image left
    assert (matrix_from_euler(0, 20, 0) @ nose)[1] > 0      # pitch>0: looks up
    right = np.array([1.0, 0, 0])                           # a point on the image's right
    assert (matrix_from_euler(0, 0, 15) @ right)[1] < 0     # roll>0: clockwise, it drops


def test_plausible_euler_unfolds_heads_turned_beyond_90_degrees():
    from workers.pose import angle_error, euler_from_matrix, matrix_from_euler, plausible_euler

    decoded = np.array(euler_from_matrix(matrix_from_euler(100.0, 5.0, -3.0)))
    assert abs(decoded[0]) <= 90 and angle_error(decoded[1], 5.0) > 90       # the folded form
    assert np.allclose(plausible_euler(decoded), [100.0, 5.0, -3.0], atol=1e-6)
    assert np.allclose(plausible_euler(np.array([30.0, 10.0, 5.0])), [30.0, 10.0, 5.0])
    assert np.allclose(angle_error([179.0, -170.0], [-179.0, 170.0]), [2.0, 20.0])


def test_batched_conversions_match_one_at_a_time_and_invert():
    """The vectorised euler/quaternion conversions (a replica's whole batch at once) give
    each row what the one-matrix call gives, across Shepperd's branches and gimbal lock."""
    from workers.pose import eulers_from_matrices, matrix_from_euler, matrix_from_quaternion, quaternions_from_matrices

    rng = np.random.default_rng(5)
    angles = [tuple(a) for a in rng.uniform(-89, 89, (300, 3))]
    angles += [(0, 0, 0), (90, 0, 0), (-90, 10, 20), (180, 0, 0), (0, 180, 0), (0, 0, 180), (179, 1, -2)]
    R = np.array([matrix_from_euler(*a) for a in angles])
    e, q = eulers_from_matrices(R), quaternions_from_matrices(R)
    assert e.shape == (len(R), 3) and q.shape == (len(R), 4)
    for r, e_row, q_row in zip(R, e, q):
        np.testing.assert_array_equal(e_row, euler_from_matrix(r))
        np.testing.assert_array_equal(q_row, quaternion_from_matrix(r))
        np.testing.assert_allclose(matrix_from_quaternion(q_row), r, atol=1e-9)
        np.testing.assert_allclose(matrix_from_euler(*e_row), r, atol=1e-9)
    assert np.all(q[:, 0] >= 0)
    np.testing.assert_allclose(e[:300], np.array(angles[:300]), atol=1e-9)
