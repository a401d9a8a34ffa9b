"""The hard-cut detector on real footage: the cuts labelled by hand in real edited video
and those between real clips are found at the frame they happen, and fades, a talking
head, a walking crowd or a camera pan are not cuts."""
from __future__ import annotations

import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from streamer.config import TrackerConfig
from streamer.tracking.cuts import CutDetector

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench.cut_labels import CUTS, FADES

VIDEO = Path(__file__).resolve().parents[4] / "shared" / "data" / "real" / "video"
SIZE = (640, 360)


def clip(name: str, frames: int) -> list[np.ndarray]:
    """The first ``frames`` frames of a shared clip, resized to SIZE (so clips join)."""
    with av.open(str(VIDEO / name)) as c:
        return [cv2.resize(f.to_ndarray(format="rgb24"), SIZE, interpolation=cv2.INTER_AREA)
                for _, f in zip(range(frames), c.decode(video=0))]


def cuts_in(frames, cfg=None) -> list[int]:
    detector = CutDetector(cfg)
    return [i for i, frame in enumerate(frames) if detector.update(frame)]


def cuts_in_file(path: Path, every: int = 1) -> list[int]:
    """Cuts in every ``every``-th frame of a file, numbered as streamer.sources.files numbers frames."""
    detector = CutDetector()
    with av.open(str(path)) as c:
        return [i for i, f in enumerate(c.decode(video=0))
                if i % every == 0 and detector.update(f.to_ndarray(format="rgb24"))]


def unmatched(found: list[int], labels: tuple[int, ...], tolerance: int = 1) -> tuple[list[int], list[int]]:
    """(labelled cuts missed, cuts found that match no label), one to one within ``tolerance``."""
    left, missed = list(found), []
    for cut in labels:
        near = [f for f in left if abs(f - cut) <= tolerance]
        if near:
            left.remove(min(near, key=lambda f: abs(f - cut)))
        else:
            missed.append(cut)
    return missed, left


@pytest.mark.parametrize("name", sorted(CUTS))
def test_the_hand_labelled_cuts_of_real_edited_video_and_no_other(name):
    """A VFR trailer with dropped frames (a cut whose colours change by 0.095 only), a TV
    documentary with cuts between shots of one room, fades to and from black (no cut)."""
    found = cuts_in_file(VIDEO / "cuts" / name)
    assert unmatched(found, CUTS[name]) == ([], []), (name, found)
    if name in FADES:
        assert found == []


@pytest.mark.parametrize("every", [2, 3])
def test_a_sampled_source_keeps_the_cuts_and_invents_none_in_fades(every):
    """Every 2nd / 3rd frame fed (``--every``): the trailer, already short of frames, loses
    more; a fade's steps grow, but stay gradual."""
    for name in ("film_trailer_vfr.mp4", "fades.mp4"):
        found = cuts_in_file(VIDEO / "cuts" / name, every)
        expected = tuple(-(-cut // every) * every for cut in CUTS[name])   # the first frame fed after it
        assert unmatched(found, expected, every) == ([], []), (name, every, found)


def test_cuts_between_real_clips_are_found_where_they_are():
    shots = [clip(n, 30) for n in ("lp_s18.mp4", "vr_1.mp4", "st_wda_kh.mp4", "crowd_1080p.mp4")]
    frames = [f for shot in shots for f in shot]
    assert cuts_in(frames) == [30, 60, 90]


def test_motion_within_a_shot_is_not_a_cut():
    for name in ("st_wda_kh.mp4", "tpsmm_driving.mp4", "crowd_1080p.mp4"):   # the busiest clips
        assert cuts_in(clip(name, 100)) == [], name


def test_a_camera_pan_is_not_a_cut_but_a_cut_during_one_is():
    """A 640x360 window pans over a wide photo, starting from rest at up to 64 px a
    frame (the whole frame's width in 10 frames); then the shot changes mid-pan."""
    photo = cv2.cvtColor(cv2.imread(str(VIDEO.parent / "group_test1.jpg")), cv2.COLOR_BGR2RGB)
    wide = cv2.resize(photo, (1600, 900))
    for speed in (8, 24, 48, 64):
        pan = [wide[200:560, x:x + 640] for x in [0] * 10 + list(range(0, 960, speed))]
        assert cuts_in(pan) == [], speed
        assert cuts_in(pan[:18] + clip("lp_s18.mp4", 10)) == [18], speed


def test_switched_off_by_the_thresholds():
    frames = clip("lp_s18.mp4", 5) + clip("vr_1.mp4", 5)
    assert cuts_in(frames) == [5]
    assert cuts_in(frames, TrackerConfig(cut_min_change=1.0)) == []
