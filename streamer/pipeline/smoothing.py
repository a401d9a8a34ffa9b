"""Temporal smoothing of one tracked face's regressed parameters.

Per-frame regression jitters; a fixed low-pass would either leave the jitter or make
fast head turns lag. The One-Euro filter (Casiez, Roussel & Vogel, CHI 2012) adapts its
cutoff to the signal's speed: smooth at rest, responsive in motion. Rotations are
filtered on SO(3) (quaternion log map), never per Euler angle: Euler angles wrap at
±180° and couple near gimbal lock, so filtering them independently makes flips and
wrong intermediate poses. Filters are driven by presentation timestamps, so dropped or
sampled frames (gaps) are handled by the maths instead of by assuming a frame rate.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike

from streamer.config import SmoothingConfig
from streamer.pipeline.outliers import AcceptAll, Gate, OutlierGate, Verdict


def _alpha(cutoff: ArrayLike, dt: float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass with ``cutoff`` Hz over ``dt`` seconds."""
    tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter over a vector, each component with its own adaptive cutoff.

    The speed that raises the cutoff is the low-passed (``d_cutoff``) derivative of the
    input against the previous *filtered* value (so a lagging estimate reads as speed and
    catches up), measured in ``unit`` per second:
    ``cutoff = min_cutoff + beta * |dx/dt| / unit``. ``unit`` lets one beta serve values
    of different scales without rescaling (and so perturbing) them.

    The first sample passes through. A sample whose timestamp does not advance past the
    previous one carries no timing information, so it is ignored and the current
    estimate is returned.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0,
                 unit: ArrayLike = 1.0) -> None:
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.unit = np.asarray(unit, dtype=np.float64)
        self._x: np.ndarray | None = None  # None until the first sample; _dx and _t are set with it
        self._dx = np.zeros(0)
        self._t = 0.0

    def __call__(self, t: float, sample: ArrayLike) -> np.ndarray:
        x = np.array(sample, dtype=np.float64)
        if self._x is None:
            self._x, self._dx, self._t = x, np.zeros_like(x), float(t)
            return self._x.copy()
        dt = float(t) - self._t
        if dt <= 0:
            return self._x.copy()
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * ((x - self._x) / dt - self._dx)
        a = _alpha(self.min_cutoff + self.beta * np.abs(self._dx) / self.unit, dt)
        self._x = self._x + a * (x - self._x)
        self._t = float(t)
        return self._x.copy()


def _qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ])


def _qconj(q: np.ndarray) -> np.ndarray:
    return np.array([q[0], -q[1], -q[2], -q[3]])


def quat_log(q: np.ndarray) -> np.ndarray:
    """Rotation vector (axis × angle, radians) of a unit quaternion with w >= 0."""
    v = q[1:]
    s = np.linalg.norm(v)
    if s < 1e-12:
        return 2.0 * v  # first order; exact in the limit
    return (2.0 * np.arctan2(s, q[0]) / s) * v


def quat_exp(r: np.ndarray) -> np.ndarray:
    """Unit quaternion of a rotation vector (inverse of :func:`quat_log`)."""
    half = 0.5 * np.linalg.norm(r)
    if half < 1e-12:
        q = np.array([1.0, *(0.5 * r)])
    else:
        q = np.array([np.cos(half), *(np.sin(half) / (2.0 * half) * r)])
    return q / np.linalg.norm(q)


class RotationFilter:
    """One-Euro smoothing of a rotation on SO(3), quaternions (w, x, y, z).

    Each step takes the relative rotation from the previous smoothed orientation to the
    sample, ``r = log(q_prev⁻¹ q)`` (chosen on the near side of the double cover, so q
    and -q give the same result and nothing flips at ±180°), low-passes the angular
    velocity ``r / dt`` to get a speed in rad/s, turns that speed into a One-Euro alpha and
    moves ``q_prev · exp(alpha · r)``. Output quaternions follow workers.pose's sign
    convention (w >= 0). Timestamps that do not advance are ignored, as in
    :class:`OneEuroFilter`.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0) -> None:
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self._q: np.ndarray | None = None  # None until the first sample; _t is set with it
        self._w = np.zeros(3)
        self._t = 0.0

    def __call__(self, t: float, sample: ArrayLike) -> np.ndarray:
        q = np.array(sample, dtype=np.float64)
        q /= np.linalg.norm(q)
        if self._q is None:
            self._q, self._t = q, float(t)
            return self._out()
        dt = float(t) - self._t
        if dt <= 0:
            return self._out()
        rel = _qmul(_qconj(self._q), q)
        if rel[0] < 0:
            rel = -rel
        r = quat_log(rel)
        self._w = self._w + _alpha(self.d_cutoff, dt) * (r / dt - self._w)
        a = _alpha(self.min_cutoff + self.beta * np.linalg.norm(self._w), dt)
        self._q = _qmul(self._q, quat_exp(a * r))
        self._q /= np.linalg.norm(self._q)
        self._t = float(t)
        return self._out()

    @property
    def state(self) -> np.ndarray | None:
        """The smoothed rotation (None before the first sample)."""
        return self._q

    def _out(self) -> np.ndarray:
        assert self._q is not None  # called after the first sample
        return self._q.copy() if self._q[0] >= 0 else -self._q


class ProbabilityFilter:
    """One-Euro over a class-probability vector, renormalised to sum to one.

    Smoothing the probabilities (not the labels) is what keeps a still face's label
    from flickering: a frame whose noise tips two close classes barely moves the
    filtered vector. Each component is a probability, so the filter's speed unit is
    probability per second. Vectors that are not finite (no classifier) pass through
    as NaN without touching the filter's state."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self._filter = OneEuroFilter(min_cutoff, beta, d_cutoff)

    def __call__(self, t: float, sample: ArrayLike) -> np.ndarray:
        p = np.asarray(sample, dtype=np.float64)
        if not np.isfinite(p).all():
            return np.full(p.shape, np.nan)
        out = np.clip(self._filter(t, p), 0.0, None)
        return out / max(out.sum(), 1e-12)


@dataclass(frozen=True)
class Smoothed:
    """One track's smoothed values at one frame, as :class:`TrackSmoother` gives them: the
    inputs of a :class:`~streamer.data.record.FaceRecord`'s smoothed fields."""

    expression: np.ndarray        # (29,) eta
    quaternion: np.ndarray        # (4,) w, x, y, z with w >= 0
    translation: np.ndarray       # (3,) tx, ty in image pixels, scale in px/cm
    shape: np.ndarray             # (99,) alpha, the running mean over the track
    emotion_probs: np.ndarray | None = None   # (classes,); None when none were given


class TrackSmoother:
    """Smooths one track's expression, rotation, translation, identity shape and emotion
    probabilities (:class:`ProbabilityFilter`, the coefficient settings).

    Expression and translation use One-Euro with the config's coefficient settings;
    rotation uses :class:`RotationFilter` with the ``rotation_*`` settings (beta per
    rad/s). Translation ([tx, ty] pixels, scale px/cm) measures its speed in units of the
    track's first scale, i.e. centimetres per second at the face's first depth and
    relative size change per second, so that beta means the same for a small face in a
    480p stream and a large one in 4K.
    Identity does not change within a track, so shape is the running mean of every
    sample the track has seen: its noise keeps shrinking instead of settling at a
    filter's floor.

    ``gate`` (:mod:`streamer.pipeline.outliers`) decides which readings are followed: one
    it holds out (a mirror-flipped pose) changes none of the smoothed values, not even the
    shape's mean, since the whole reading came from a crop the network misread; on its
    first trusted reading after doubted ones the smoothing starts again from that reading.
    """

    def __init__(self, cfg: SmoothingConfig | None = None, gate: Gate | None = None) -> None:
        self._cfg = cfg or SmoothingConfig()
        self.gate: Gate = gate or AcceptAll()
        self._start()

    def _start(self) -> None:
        """Filters with nothing seen."""
        cfg = self._cfg
        self._expression = OneEuroFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff)
        self._rotation = RotationFilter(cfg.rotation_min_cutoff, cfg.rotation_beta, cfg.d_cutoff)
        self._translation: OneEuroFilter | None = None  # its unit is the first scale seen
        self._shape: np.ndarray | None = None
        self._shape_n = 0
        self._emotion = ProbabilityFilter(cfg.min_cutoff, cfg.beta, cfg.d_cutoff)
        self._last: Smoothed | None = None

    def update(self, t: float, expression: ArrayLike, quaternion: ArrayLike, translation: ArrayLike,
               shape: ArrayLike, emotion_probs: ArrayLike | None = None, trusted: bool = True) -> Smoothed:
        """Feed one frame's raw values at pts ``t`` (seconds); returns the smoothed ones
        (``emotion_probs`` only when given). ``trusted``: the crop framed the face (see
        :mod:`streamer.pipeline.outliers`)."""
        q = np.asarray(quaternion, dtype=np.float64)
        verdict = self.gate.check(float(t), q, trusted, self._rotation.state)
        if verdict is Verdict.HOLD and self._last is not None:
            return replace(self._last, emotion_probs=None if emotion_probs is None else self._last.emotion_probs)
        if verdict is Verdict.RESTART:
            self._start()
        if self._translation is None:
            c = self._cfg
            unit = abs(float(np.asarray(translation)[2])) or 1.0
            self._translation = OneEuroFilter(c.min_cutoff, c.beta, c.d_cutoff, unit=unit)
        sample = np.array(shape, dtype=np.float64)
        self._shape_n += 1
        if self._shape is None:
            self._shape = sample
        else:
            self._shape += (sample - self._shape) / self._shape_n
        self._last = Smoothed(
            expression=self._expression(t, expression),
            quaternion=self._rotation(t, q),
            translation=self._translation(t, translation),
            shape=self._shape.copy(),
            emotion_probs=None if emotion_probs is None else self._emotion(t, emotion_probs),
        )
        return self._last


def gate_for(cfg: SmoothingConfig) -> Gate:
    """The outlier gate the config asks for (:class:`AcceptAll` when it asks for none)."""
    jump = cfg.rotation_jump_deg or None
    if jump is None and not cfg.hold_doubted:
        return AcceptAll()
    return OutlierGate(jump, cfg.rotation_max_speed_deg_s, cfg.outlier_confirm, cfg.hold_doubted)


class SmootherBank:
    """One :class:`TrackSmoother` per track id, created on first sight.

    The caller drops a track's smoother when the tracker ends the track (ids are never
    reused, so a forgotten drop only costs memory, never mixes two faces).
    """

    def __init__(self, cfg: SmoothingConfig | None = None) -> None:
        self.cfg = cfg or SmoothingConfig()
        self._smoothers: dict[int, TrackSmoother] = {}

    def update(self, track_id: int, t: float, expression: ArrayLike, quaternion: ArrayLike,
               translation: ArrayLike, shape: ArrayLike, emotion_probs: ArrayLike | None = None,
               trusted: bool = True) -> Smoothed:
        smoother = self._smoothers.get(track_id)
        if smoother is None:
            smoother = self._smoothers[track_id] = TrackSmoother(self.cfg, gate_for(self.cfg))
        return smoother.update(t, expression, quaternion, translation, shape, emotion_probs, trusted)

    def drop(self, track_id: int) -> None:
        self._smoothers.pop(track_id, None)

    def __contains__(self, track_id: int) -> bool:
        return track_id in self._smoothers

    def __len__(self) -> int:
        return len(self._smoothers)
