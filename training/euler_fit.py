"""A rotation's AFLW angles with the yaw fixed from elsewhere (AFLW's annotation).

On AFLW faces the pose label takes AFLW's yaw and another teacher's pitch and roll. Putting
the angles side by side as they come goes wrong on profiles: near 90 degrees of yaw the
pitch and roll axes of R = Rz(-roll)·Ry(-yaw)·Rx(-pitch) nearly coincide and only one
combination of the two is determined. 3DDFA_V2's rotation of a plain profile then reads,
for example, yaw -69, pitch 72, roll 87; with yaw set to AFLW's -89 those two angles
describe another head.

So pitch and roll are fitted: the rotation of the given yaw closest to R (Frobenius),
plus ``shrink`` x (pitch^2 + roll^2) in radians, which decides only the direction R leaves
undetermined (where its curvature, about 4 cos^2(yaw), is far below ``shrink``) and pulls
well-determined angles in by about shrink / 2 of their value (5% at 0.1: 20 -> 19 degrees). Measured on 938
AFLW faces turned beyond 60 degrees that both teachers label (docs/teachers.md): 3DDFA_V2's
pitch and roll, fitted so, differ from MediaPipe's by 8.0 / 7.2 degrees; unfitted, by
17.7 / 17.0; zero angles, by 9.9 / 11.0. On near-frontal faces the fit changes nothing
that matters (2.9 -> 3.0 degrees of pitch against MediaPipe).
"""
from __future__ import annotations

import numpy as np

from workers.pose import euler_from_matrix, matrix_from_euler

SHRINK = 0.1


def _rx(t: np.ndarray) -> np.ndarray:
    m = np.zeros((len(t), 3, 3)); m[:, 0, 0] = 1
    m[:, 1, 1] = m[:, 2, 2] = np.cos(t); m[:, 1, 2] = -np.sin(t); m[:, 2, 1] = np.sin(t)
    return m


def _rz(t: np.ndarray) -> np.ndarray:
    m = np.zeros((len(t), 3, 3)); m[:, 2, 2] = 1
    m[:, 0, 0] = m[:, 1, 1] = np.cos(t); m[:, 0, 1] = -np.sin(t); m[:, 1, 0] = np.sin(t)
    return m


def closest_with_yaw(R: np.ndarray, yaw: np.ndarray, iters: int = 30) -> np.ndarray:
    """(N, 3) angles of the rotation of the given yaw closest to each R (no shrink): the
    two one-angle optima have closed forms, alternated from R's own pitch and roll."""
    R = np.asarray(R, np.float64).reshape(-1, 3, 3)
    n = len(R)
    e0 = np.array([euler_from_matrix(r) for r in R]).reshape(-1, 3)
    a, c = -np.radians(e0[:, 1]), -np.radians(e0[:, 2])      # Rx(a), Rz(c)
    b = -np.radians(np.asarray(yaw, np.float64))
    A = np.zeros((n, 3, 3)); A[:, 0, 0] = A[:, 2, 2] = np.cos(b); A[:, 0, 2] = np.sin(b)
    A[:, 2, 0] = -np.sin(b); A[:, 1, 1] = 1
    Rt = R.transpose(0, 2, 1)
    for _ in range(iters):
        B = A @ _rx(a) @ Rt                  # c maximising tr(Rz(c) B)
        c = np.arctan2(B[:, 0, 1] - B[:, 1, 0], B[:, 0, 0] + B[:, 1, 1])
        C = Rt @ _rz(c) @ A                  # a maximising tr(Rx(a) C)
        a = np.arctan2(C[:, 1, 2] - C[:, 2, 1], C[:, 1, 1] + C[:, 2, 2])
    return np.stack([np.asarray(yaw, np.float64).reshape(-1), -np.degrees(a), -np.degrees(c)], 1)


def with_yaw(R: np.ndarray, yaw: np.ndarray, shrink: float = SHRINK) -> np.ndarray:
    """(N, 3) AFLW (yaw, pitch, roll): ``yaw`` as given, pitch and roll fitted to R."""
    from scipy.optimize import minimize

    R = np.asarray(R, np.float64).reshape(-1, 3, 3)
    yaw = np.asarray(yaw, np.float64).reshape(-1)
    out = closest_with_yaw(R, yaw)
    if shrink <= 0:
        return out
    for i, (r, y) in enumerate(zip(R, yaw)):
        cost = lambda x: np.sum((matrix_from_euler(y, *x) - r) ** 2) + shrink * np.sum(np.radians(x) ** 2)
        fits = [minimize(cost, x0, method="Nelder-Mead", options={"xatol": 0.01, "fatol": 1e-10})
                for x0 in (out[i, 1:], np.zeros(2))]
        out[i, 1:] = min(fits, key=lambda f: f.fun).x
    return out
