"""The detection schedule with a phase: the slots a stream's scheduled runs fall on."""
from __future__ import annotations

import pytest

from streamer.tracking.schedule import DetectionPhase, DetectionSchedule


def _detected(schedule: DetectionSchedule, frames, captured=None) -> list[int]:
    return [f for f in frames if schedule.due(f, captured=None if captured is None else captured(f))]


def test_a_phase_puts_the_scheduled_runs_on_its_slot_after_the_first_frame():
    assert _detected(DetectionSchedule(10, DetectionPhase(0)), range(40)) == [0, 10, 20, 30]
    assert _detected(DetectionSchedule(10, DetectionPhase(3)), range(40)) == [0, 13, 23, 33]  # 3 is too soon after 0
    assert _detected(DetectionSchedule(10, DetectionPhase(7)), range(40)) == [0, 7, 17, 27, 37]
    assert _detected(DetectionSchedule(10, DetectionPhase(13)), range(30)) == [0, 13, 23]   # taken modulo the period
    assert _detected(DetectionSchedule(1, DetectionPhase(0)), range(4)) == [0, 1, 2, 3]
    # a live stream that drops frames detects the first frame it has at or after a slot, and
    # keeps its slots: the next run is on the slot after, not every_frames after the late one
    s = DetectionSchedule(10, DetectionPhase(7))
    assert _detected(s, (0, 1, 2, 8, 9, 16, 18, 27, 28, 36, 41)) == [0, 8, 18, 27, 41]
    # a cut and a request run at once and leave the slots where they are; a slot less than
    # half a period after such a run is skipped
    s = DetectionSchedule(10, DetectionPhase(7))
    assert s.due(0) and s.due(3, cut=True)
    assert _detected(s, range(4, 20)) == [17]            # 7 was 4 after the cut
    s.request()
    assert s.due(20) and _detected(s, range(21, 31)) == [27]
    with pytest.raises(ValueError):
        DetectionPhase(-1)
    with pytest.raises(ValueError):
        DetectionPhase(0, clock_fps=0.0)
    assert DetectionPhase.for_stream(None, 30.0) is None
    assert DetectionPhase.for_stream(4, 0.0) == DetectionPhase(4, None)    # a camera of unknown rate: indices
    assert DetectionPhase.for_stream(4, 25.0) == DetectionPhase(4, 25.0)


def test_live_streams_started_apart_keep_their_phases_on_the_shared_clock():
    """Two cameras in step (the same frame g at the same time), the second started 3 frames
    later: counted in their own indices, slots 0 and 5 would be 3 frames off; on the clock
    their runs fall on the frames whose clock position is 0 and 5 modulo 10."""
    def at(g: float) -> float:   # frame g's capture time at 30 frames/s, mid-frame
        return (30_000 + g + 0.5) / 30

    a = DetectionSchedule(10, DetectionPhase(0, clock_fps=30.0))
    b = DetectionSchedule(10, DetectionPhase(5, clock_fps=30.0))
    ran_a = [g for g in range(40) if a.due(g, captured=at(g))]
    ran_b = [g for g in range(3, 40) if b.due(g - 3, captured=at(g))]   # its index 0 is frame 3
    assert ran_a == [0, 10, 20, 30]
    assert ran_b == [3, 15, 25, 35]
    # frames 14-16 dropped: the next one runs, and the slot after stays on the clock
    c = DetectionSchedule(10, DetectionPhase(5, clock_fps=30.0))
    kept = [g for g in range(40) if not 14 <= g <= 16]
    assert [g for g in kept if c.due(g, captured=at(g))] == [0, 5, 17, 25, 35]
    # the wall clock set back: no run for it, the slots go on from the new time
    assert not c.due(40, captured=at(12)) and [g for g in range(13, 26) if c.due(41 + g, captured=at(g))] == [25]
    # a frame without a capture time (0.0) is placed by its index
    d = DetectionSchedule(10, DetectionPhase(5, clock_fps=30.0))
    assert [f for f in range(20) if d.due(f, captured=0.0)] == [0, 5, 15]
