"""Head pose conventions, in one place.

Model and camera frames: right-handed, +x toward image right (the subject's left in a
frontal view), +y up, +z toward the viewer; the camera sits on +z looking down -z, so a
frontal face has R = I. Image coordinates are u right, v down.

Angles follow AFLW2000-3D's ``Pose_Para`` as seen in the image (DESIGN.md):
  yaw   > 0  the face turns toward the image's left
  pitch > 0  the face looks up (chin up)
  roll  > 0  the face rotates clockwise in the image
A right-handed rotation about +y turns the nose toward image right, about +x turns it
down, about +z turns the face anticlockwise; so with
    R = Rz(-roll) · Ry(-yaw) · Rx(-pitch)
each AFLW angle is the negative of the right-handed one. Roll is applied last, in the
image plane, which is what a person reading the numbers expects.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    import torch


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def matrix_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation matrix from AFLW yaw/pitch/roll in degrees."""
    y, p, r = np.radians([yaw, pitch, roll])
    return _rz(-r) @ _ry(-y) @ _rx(-p)


def euler_from_matrix(R: np.ndarray) -> tuple[float, float, float]:
    """AFLW (yaw, pitch, roll) in degrees from a rotation matrix (inverse of the above)."""
    yaw, pitch, roll = eulers_from_matrices(R)[0]
    return float(yaw), float(pitch), float(roll)


def eulers_from_matrices(R: np.ndarray) -> np.ndarray:
    """(N, 3) AFLW yaw, pitch, roll in degrees for (N, 3, 3) rotations (or one (3, 3)):
    vectorised, as a GPU replica's batch of hundreds of crops needs."""
    R = np.asarray(R, dtype=np.float64).reshape(-1, 3, 3)
    # R = Rz(c) Ry(b) Rx(a) with a = -pitch, b = -yaw, c = -roll.
    b = np.arcsin(np.clip(-R[:, 2, 0], -1.0, 1.0))
    regular = np.abs(R[:, 2, 0]) < 1 - 1e-9
    a = np.where(regular, np.arctan2(R[:, 2, 1], R[:, 2, 2]), 0.0)
    # gimbal lock: put it all in roll
    c = np.where(regular, np.arctan2(R[:, 1, 0], R[:, 0, 0]), np.arctan2(-R[:, 0, 1], R[:, 1, 1]))
    return np.degrees(np.stack([-b, -a, -c], axis=1))


def quaternion_from_matrix(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) with w >= 0."""
    return quaternions_from_matrices(R)[0]


def quaternions_from_matrices(R: np.ndarray) -> np.ndarray:
    """(N, 4) unit quaternions (w, x, y, z), w >= 0, for (N, 3, 3) rotations (or one).

    Shepperd's rule: from the trace when it is positive, else from the largest diagonal
    element, so that no division is by a number near zero."""
    R = np.asarray(R, dtype=np.float64).reshape(-1, 3, 3)
    q = np.empty((len(R), 4))
    t = np.trace(R, axis1=1, axis2=2)
    pos = t > 0
    s = np.sqrt(np.maximum(t[pos], 0.0) + 1.0) * 2
    Rp = R[pos]
    q[pos] = np.stack([0.25 * s, (Rp[:, 2, 1] - Rp[:, 1, 2]) / s, (Rp[:, 0, 2] - Rp[:, 2, 0]) / s,
                       (Rp[:, 1, 0] - Rp[:, 0, 1]) / s], axis=1)
    largest = np.argmax(np.diagonal(R, axis1=1, axis2=2), axis=1)
    for i in range(3):
        m = ~pos & (largest == i)
        if not m.any():
            continue
        j, k = (i + 1) % 3, (i + 2) % 3
        Rm = R[m]
        s = np.sqrt(1.0 + Rm[:, i, i] - Rm[:, j, j] - Rm[:, k, k]) * 2
        q[m, 0] = (Rm[:, k, j] - Rm[:, j, k]) / s
        q[m, 1 + i] = 0.25 * s
        q[m, 1 + j] = (Rm[:, j, i] + Rm[:, i, j]) / s
        q[m, 1 + k] = (Rm[:, k, i] + Rm[:, i, k]) / s
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 0] < 0] *= -1
    return q


def matrix_from_quaternion(q: ArrayLike) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_from_6d(d6: torch.Tensor) -> torch.Tensor:
    """Gram–Schmidt of two predicted columns (Zhou et al. 2019); works on torch batches.

    The network regresses the first two columns of R: continuous, unlike Euler angles
    or quaternions, which is why it trains better near ±90° yaw.
    """
    import torch

    a1, a2 = d6[..., 0:3], d6[..., 3:6]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def _wrap(a: ArrayLike) -> np.ndarray:
    return (np.asarray(a, np.float64) + 180) % 360 - 180


def angle_error(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Absolute angle differences in degrees, the short way round."""
    return np.abs(_wrap(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def plausible_euler(e: np.ndarray) -> np.ndarray:
    """(..., 3) yaw, pitch, roll -> the same rotations written with pitch and roll nearer
    zero: of (y, p, r) and its twin (180 - y, p + 180, r + 180) (R = Rz·Ry·Rx above), the
    one with the smaller |pitch| + |roll|. ``euler_from_matrix`` keeps |yaw| <= 90, so a head
    turned 100 degrees decodes as yaw 80 with pitch and roll near 180; compared that way with
    a prediction of yaw 85, pitch and roll would count 180 degrees off. NaN rows stay NaN."""
    e = _wrap(e)
    twin = _wrap(np.stack([180 - e[..., 0], e[..., 1] + 180, e[..., 2] + 180], -1))
    use = np.abs(twin[..., 1:]).sum(-1) < np.abs(e[..., 1:]).sum(-1)
    return np.where(use[..., None], twin, e)
