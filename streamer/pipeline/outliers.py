"""Which of a track's per-frame readings the smoother may follow.

Two kinds of reading are not the face's motion, and a low-pass filter that takes them
as motion swings towards them for several frames (a tracked face's published yaw going
-47°, -22°, -8°, +11°, -7°, -21° while the face never turned):

* **A crop that does not frame the face.** Between detector runs a face's crop is placed
  from where the model saw it a few frames before; a face that moves fast slips out of
  it, and the presence probe says so (``presence`` below its threshold). What the
  network reads in such a crop is not this face's pose or expression. The tracker asks
  the detector at once and ends the track unless the detector confirms it; until then
  the smoothed values stay where the last trusted reading left them. A crop the
  detector placed is trusted whatever the probe says (the probe doubts some real faces
  turned to profile).
* **A mirror flip.** A turned, small or blurred face can read as its own mirror image:
  yaw -50° in one frame, +53° in the next, -49° after. No head turns that fast: 45°
  between two frames of a 30 frames/s video is 1,350°/s, twice the fastest head shake. A
  reading whose rotation is further from the smoothed one than a head could have turned
  since is held out, unless the readings after it agree with it: ``confirm`` of them in
  a row are a real change (a face that turned while it was occluded) and are filtered in.

A track whose readings were all doubted so far is smoothed as usual (it has nothing
better), and its first trusted reading starts the smoothing again from scratch.
The gate is a strategy given to :class:`~streamer.pipeline.smoothing.TrackSmoother`;
:class:`AcceptAll` follows every reading.
"""
from __future__ import annotations

from enum import Enum
from typing import Protocol

import numpy as np


class Verdict(Enum):
    """What the smoother does with one reading."""

    ACCEPT = "accept"     # filter it in, as motion
    HOLD = "hold"         # an outlier: the smoothed values stay where they are
    RESTART = "restart"   # the first trusted reading after doubted ones: smooth from it afresh


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Geodesic angle between two rotations given as unit quaternions (either sign)."""
    d = abs(float(np.dot(a, b))) / (float(np.linalg.norm(a)) * float(np.linalg.norm(b)))
    return float(np.degrees(2.0 * np.arccos(min(1.0, d))))


class Gate(Protocol):
    held: int   # readings held out so far

    def check(self, t: float, quaternion: np.ndarray, trusted: bool, state: np.ndarray | None) -> Verdict:
        """The verdict on a reading at pts ``t`` (``trusted``: its crop frames the face, as
        far as the probe or the detector can tell) given the smoothed rotation ``state``
        (None before the first reading)."""
        ...


class AcceptAll:
    """Follows every reading."""

    held = 0

    def check(self, t: float, quaternion: np.ndarray, trusted: bool, state: np.ndarray | None) -> Verdict:
        return Verdict.ACCEPT


class OutlierGate:
    """Holds out doubted readings (``hold_doubted``) and rotations further from the
    smoothed one than ``jump_deg`` (None: no such rule), or than ``max_speed_deg_s``
    allows over the time since the reading before, whichever is larger (sparse readings,
    ``--every 10`` or a stalled camera, may change more). ``confirm`` jumps in a row, each
    within ``jump_deg`` of the one before, are filtered in.

    The allowance counts from the reading before, not from when the smoothed rotation last
    moved: readings held out meanwhile (a crop that had lost the face) are no evidence
    that the head turned, and counting their time would let a flip through after them
    (ten doubted frames at 25 frames/s would allow 240°)."""

    def __init__(self, jump_deg: float | None = 45.0, max_speed_deg_s: float = 600.0, confirm: int = 3,
                 hold_doubted: bool = True) -> None:
        if (jump_deg is not None and jump_deg <= 0) or max_speed_deg_s <= 0 or confirm < 1:
            raise ValueError("jump_deg and max_speed_deg_s must be > 0 and confirm >= 1")
        self.jump_deg = jump_deg
        self.max_speed_deg_s = float(max_speed_deg_s)
        self.confirm = int(confirm)
        self.hold_doubted = hold_doubted
        self._trusted_seen = False
        self._pending: list[np.ndarray] = []   # the jumps in a row so far
        self._last_t: float | None = None      # pts of the reading before
        self.held = 0

    def check(self, t: float, quaternion: np.ndarray, trusted: bool, state: np.ndarray | None) -> Verdict:
        before, self._last_t = self._last_t, t
        if self.hold_doubted:
            if not trusted:
                if not self._trusted_seen:
                    return Verdict.ACCEPT          # nothing better yet: smooth it
                self.held += 1
                return Verdict.HOLD
            if not self._trusted_seen:
                self._trusted_seen = True
                return Verdict.ACCEPT if state is None else Verdict.RESTART
        if state is None or before is None or self.jump_deg is None:
            return Verdict.ACCEPT
        allowed = max(self.jump_deg, self.max_speed_deg_s * max(0.0, t - before))
        if rotation_angle_deg(state, quaternion) <= allowed:
            self._pending.clear()
            return Verdict.ACCEPT
        if self._pending and rotation_angle_deg(self._pending[-1], quaternion) > self.jump_deg:
            self._pending.clear()           # a jump unlike the one before: a new run
        self._pending.append(np.asarray(quaternion, np.float64))
        if len(self._pending) >= self.confirm:
            self._pending.clear()
            return Verdict.ACCEPT
        self.held += 1
        return Verdict.HOLD
