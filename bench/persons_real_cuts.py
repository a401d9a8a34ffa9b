"""Tracks and persons on real edited video, through `facestream analyze` as a user runs it.

For each edited clip of ``shared/data/real/video/cuts`` with faces (cuts and faces labelled
by hand in ``bench/cut_labels.py``), one ``analyze`` run with the shipped defaults, then
from its records:

- tracks, and tracks spanning a labelled cut (holding frames on both sides of one:
  target 0; a cut must end every track);
- persons; persons given to two labelled people (target 0); labelled people split over
  several person ids (target 0); tracks on detections that are not faces.

    .venv/bin/python bench/persons_real_cuts.py
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cut_labels import CUTS, PEOPLE
from bench.machine import machine
from streamer.config import load_config
from streamer.data.dataset import read_records
from streamer.pipeline.analyze import analyze

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "video" / "cuts"


def who(clip: str, frame: int, cx: float) -> str | None:
    for name, first, last, x0, x1 in PEOPLE[clip]:
        if first <= frame <= last and x0 <= cx < x1:
            return name
    return None


def main() -> None:
    print(f"# tracks and persons on real edited clips, `analyze` defaults; {machine()}")
    print("| clip | labelled cuts | tracks | tracks spanning a cut | persons | persons on two people "
          "| people split | non-face tracks |")
    print("|---|---|---|---|---|---|---|---|")
    for clip in PEOPLE:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = load_config(None, {"parquet": {"out": tmp}})
            analyze(CLIPS / clip, cfg, stream_id="clip")
            records = read_records(tmp, "clip")
        frames: dict[int, list[int]] = {}
        people: dict[int, set[str]] = {}       # person id -> labelled people under it
        persons_of: dict[str, set[int]] = {}   # labelled person -> person ids
        non_face: set[int] = set()
        for r in records:
            frames.setdefault(r.track_id, []).append(r.frame_index)
            name = who(clip, r.frame_index, float(r.box[0] + r.box[2]) / 2)
            if name is None:
                non_face.add(r.track_id)
                continue
            people.setdefault(int(r.person_id or -1), set()).add(name)
            persons_of.setdefault(name, set()).add(int(r.person_id or -1))
        spanning = sum(any(min(f) < cut <= max(f) for cut in CUTS[clip]) for f in frames.values())
        print(f"| {clip} | {len(CUTS[clip])} | {len(frames)} | {spanning} | "
              f"{len({r.person_id for r in records})} | {sum(len(p) > 1 for p in people.values())} | "
              f"{sum(len(p) > 1 for p in persons_of.values())} | {len(non_face)} |")


if __name__ == "__main__":
    main()
