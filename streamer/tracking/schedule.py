"""When a stream's frame goes to the detector: only when needed.

Between detector runs the tracked faces are placed from the regressor's own output
(:mod:`streamer.tracking.placement`), so the detector is needed only to find faces that were not
there before, to re-anchor the tracks, and to confirm a face the regressor doubts. It runs:

- on a schedule: when ``every_frames`` source frames have passed since it last ran
  (counted in frame indices, so a live stream's dropped frames or a file's sampling do
  not stretch it); that run is also the check for new faces;
- at a hard shot cut (every track ends there, the new shot's faces must be found);
- at once (the next frame read) when :meth:`request` was called: a track's presence fell.

``every_frames`` 1 detects every frame, as before track-driven detection. The requests
come from the stage that reads the regressor's output, in another thread than the one
that plans frames, hence the event.
"""
from __future__ import annotations

import threading


class DetectionSchedule:
    def __init__(self, every_frames: int):
        if every_frames < 1:
            raise ValueError(f"every_frames must be >= 1, got {every_frames}")
        self.every_frames = every_frames
        self._last: int | None = None   # frame index of the last run
        self._urgent = threading.Event()

    def request(self) -> None:
        """Detect the next frame planned (a tracked face may be gone)."""
        self._urgent.set()

    def due(self, frame_index: int, cut: bool = False) -> bool:
        """Whether frame ``frame_index`` (increasing from call to call) is detected; a
        frame said to be due counts as the last run."""
        urgent = self._urgent.is_set()
        if urgent:
            self._urgent.clear()
        due = (cut or urgent or self._last is None
               or frame_index - self._last >= self.every_frames)
        if due:
            self._last = frame_index
        return due
