"""When a stream's frame goes to the detector: only when needed, and not when the others do.

Between detector runs the tracked faces are placed from the regressor's own output
(:mod:`streamer.tracking.placement`), so the detector is needed only to find faces that were not
there before, to re-anchor the tracks, and to confirm a face the regressor doubts. It runs:

- on the first frame;
- on a schedule, the check for new faces, once every ``every_frames`` source frames
  (counted in frame indices, so a live stream's dropped frames or a file's sampling do
  not stretch it);
- at a hard shot cut (every track ends there, the new shot's faces must be found);
- at once (the next frame read) when :meth:`request` was called: a track's presence fell.

``every_frames`` 1 detects every frame, as before track-driven detection. The requests
come from the stage that reads the regressor's output, in another thread than the one
that plans frames, hence the event.

Without a :class:`DetectionPhase` the schedule counts from the last run, whatever caused
it. Cameras that show the same scene, or are started together, then detect on the same
frames: a cut they all see re-aligns them, and their detector runs queue behind each
other on the shared replica every ``every_frames`` frames (the latency of those frames
grows with the number of cameras) while the replica idles in between. With a phase the
scheduled runs fall on fixed slots instead, the frames whose position is ``slot``
modulo ``every_frames``: the service gives each stream the slot least used by the
others (:class:`streamer.service.host.HostPool`), so their runs are spread over the
frames. A run for another cause (first frame, cut, request) leaves the slots where they
are; a slot closer than half a period after such a run is skipped, so a cut does not
cost two runs in a row. A live stream's position is counted on the wall clock
(``clock_fps``: the frame's capture time times the camera's rate), the clock that all
streams share whenever each was started, and on which a dropped frame leaves a gap as it
does in the indices; a file's (and a live stream of unknown rate) in frame indices.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class DetectionPhase:
    """Where a stream's scheduled detector runs fall: on the frames at ``slot`` modulo
    ``every_frames``, counted on the wall clock at ``clock_fps`` frames a second (a live
    stream), or in frame indices (None)."""

    slot: int
    clock_fps: float | None = None

    @classmethod
    def for_stream(cls, slot: int | None, live_fps: float | None) -> DetectionPhase | None:
        """A stream's phase: none without a slot; on the wall clock for a live stream
        whose rate is known (``live_fps``: None for a file)."""
        if slot is None:
            return None
        return cls(slot, live_fps if live_fps and math.isfinite(live_fps) and live_fps > 0 else None)

    def __post_init__(self) -> None:
        if self.slot < 0:
            raise ValueError(f"a detection slot is >= 0, got {self.slot}")
        if self.clock_fps is not None and not (math.isfinite(self.clock_fps) and self.clock_fps > 0):
            raise ValueError(f"clock_fps must be a positive rate, got {self.clock_fps}")


class DetectionSchedule:
    def __init__(self, every_frames: int, phase: DetectionPhase | None = None):
        if every_frames < 1:
            raise ValueError(f"every_frames must be >= 1, got {every_frames}")
        self.every_frames = every_frames
        self.phase = phase
        self._last: int | None = None   # position of the last run
        self._next = 0                  # with a phase: the position of the next slot
        self._urgent = threading.Event()

    def request(self) -> None:
        """Detect the next frame planned (a tracked face may be gone)."""
        self._urgent.set()

    def due(self, frame_index: int, cut: bool = False, captured: float | None = None) -> bool:
        """Whether frame ``frame_index`` (increasing from call to call; ``captured``: its
        capture time, which places a live stream's frame on the clock of its phase) is
        detected; a frame said to be due counts as the last run."""
        urgent = self._urgent.is_set()
        if urgent:
            self._urgent.clear()
        at = self._position(frame_index, captured)
        if self._last is not None and at < self._last:   # the wall clock was set back
            self._last, self._next = at, self._slot_after(at)
        if cut or urgent or self._last is None:
            due = True
        elif self.phase is None:
            due = at - self._last >= self.every_frames
        else:
            due = at >= self._next
        if due:
            self._last = at
            self._next = self._slot_after(at)
        return due

    def _position(self, frame_index: int, captured: float | None) -> int:
        fps = self.phase.clock_fps if self.phase is not None else None
        if fps is None or not captured:   # 0.0: a frame made without a capture time
            return frame_index
        return math.floor(captured * fps)

    def _slot_after(self, at: int) -> int:
        """The first slot more than half a period after a run at ``at`` (phase None: unused)."""
        if self.phase is None:
            return at + self.every_frames
        n = self.every_frames
        slot = at + (self.phase.slot - at) % n
        while slot - at < max(1, n // 2):
            slot += n
        return slot
