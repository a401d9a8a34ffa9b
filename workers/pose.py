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

if TYPE_CHECKING:
    import torch


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def matrix_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation matrix from AFLW yaw/pitch/roll in degrees."""
    y, p, r = np.radians([yaw, pitch, roll])
    return _rz(-r) @ _ry(-y) @ _rx(-p)


def euler_from_matrix(R: np.ndarray) -> tuple[float, float, float]:
    """AFLW (yaw, pitch, roll) in degrees from a rotation matrix (inverse of the above)."""
    R = np.asarray(R, dtype=np.float64)
    # R = Rz(c) Ry(b) Rx(a) with a = -pitch, b = -yaw, c = -roll.
    b = np.arcsin(np.clip(-R[2, 0], -1.0, 1.0))
    if abs(R[2, 0]) < 1 - 1e-9:
        a = np.arctan2(R[2, 1], R[2, 2])
        c = np.arctan2(R[1, 0], R[0, 0])
    else:  # gimbal lock: put it all in roll
        a = 0.0
        c = np.arctan2(-R[0, 1], R[1, 1])
    yaw, pitch, roll = np.degrees([-b, -a, -c])
    return float(yaw), float(pitch), float(roll)


def quaternion_from_matrix(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) with w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    t = np.trace(R)
    if t > 0:
        s = np.sqrt(t + 1.0) * 2
        q = np.array([0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = np.sqrt(1.0 + R[i, i] - R[j, j] - R[k, k]) * 2
        q = np.empty(4)
        q[0] = (R[k, j] - R[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (R[j, i] + R[i, j]) / s
        q[1 + k] = (R[k, i] + R[i, k]) / s
    q = np.asarray(q, dtype=np.float64)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def matrix_from_quaternion(q) -> np.ndarray:
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


def _wrap(a) -> np.ndarray:
    return (np.asarray(a, np.float64) + 180) % 360 - 180


def angle_error(a, b) -> np.ndarray:
    """Absolute angle differences in degrees, the short way round."""
    return np.abs(_wrap(np.asarray(a, np.float64) - b))


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
