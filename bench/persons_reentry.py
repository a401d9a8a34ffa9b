"""Persons on a generated sequence of real people: cuts, re-entries, occlusions, two at once.

Real talking-head clips of four different people (A, B, C, D) are cut together into one
640x360 video, each shot on its own background: A, B, A (who leaves the frame and comes
back), C, B (hidden behind a bar for half a second), A and C side by side, D, A. Every
join is a hard cut, so every track ends there; the question is whether the faces are
given back their person. The true person of every record is known from the layout (which
clip is where), so the run is scored as multi-object tracking is:

- IDF1 of ``person_id`` and, beside it, of ``track_id`` (identity F1 under the best
  one-to-one map between true and reported ids; a frame with a visible face and no
  record is a miss, a record where no face is shown a false one);
- identity switches: consecutive records of one true person under different ids;
- persons found against true persons.

    .venv/bin/python bench/persons_reentry.py [--frames-per-shot 40] [--same-person-max 0.24 0.28]

(one run per ``identity.same_person_max`` given; default: the configured one).

Targets: person IDF1 >= 0.95, persons found = true persons.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine
from streamer.config import load_config
from streamer.data.dataset import read_records
from streamer.pipeline.analyze import analyze

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
# four different people, looked at (vr_3 is not among them: it shows st_wda_aoc's person)
CLIPS = {"A": "video/st_wda_aoc.mp4", "B": "video/vr_2.mp4", "C": "video/st_wda_kh.mp4", "D": "video/vr_1.mp4"}
W, H, SIDE, FPS = 640, 360, 300, 25
# (people left to right, what happens in the shot)
PLAN = (("A", "plain"), ("B", "plain"), ("A", "exit"), ("C", "plain"), ("B", "occlusion"),
        ("AC", "pair"), ("D", "plain"), ("A", "plain"))


class _Clip:
    """A clip's frames as SIDE-pixel squares, read on as shots ask for them (looping)."""

    def __init__(self, path: Path):
        with av.open(str(path)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        self._frames = [cv2.resize(_square(f), (SIDE, SIDE), interpolation=cv2.INTER_AREA) for f in frames]
        self._next = 0

    def take(self) -> np.ndarray:
        frame = self._frames[self._next % len(self._frames)]
        self._next += 1
        return frame


def _square(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(h, w)
    return image[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]


@dataclass
class _Truth:
    """Per frame, the people visible and where: (person, x1 of their picture)."""

    frames: list[list[tuple[str, int]]]

    def person_at(self, frame: int, box: np.ndarray) -> str | None:
        cx = (box[0] + box[2]) / 2
        for person, x in self.frames[frame]:
            if x <= cx < x + SIDE:
                return person
        return None


def build(path: Path, frames_per_shot: int, seed: int = 0) -> _Truth:
    """Write the sequence to ``path``; the truth of every frame."""
    rng = np.random.default_rng(seed)
    clips = {k: _Clip(REAL / v) for k, v in CLIPS.items()}
    truth: list[list[tuple[str, int]]] = []
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for people, kind in PLAN:
            tint = rng.uniform(20, 200, 3)
            noise = cv2.resize(rng.uniform(-40, 40, (H // 16, W // 16, 3)), (W, H))
            background = np.clip(tint + noise, 0, 255).astype(np.uint8)
            for k in range(frames_per_shot):
                image, visible = background.copy(), []
                xs = [40, W - SIDE - 40] if kind == "pair" else [(W - SIDE) // 2 + int(30 * np.sin(k / 9))]
                if kind == "exit":   # slides out to the right, stays away, slides back
                    third = frames_per_shot // 3
                    away = min(k, frames_per_shot - k, third)
                    xs = [xs[0] + int(away / third * (W - xs[0]))]
                for person, x in zip(people, xs):
                    picture = clips[person].take()
                    if x + SIDE <= W:
                        image[30:30 + SIDE, x:x + SIDE] = picture
                        visible.append((person, x))
                    elif x < W:
                        image[30:30 + SIDE, x:] = picture[:, :W - x]
                if kind == "occlusion" and frames_per_shot // 3 <= k < frames_per_shot // 3 + FPS // 2:
                    image[30:30 + SIDE, :] = 30
                    visible = []
                truth.append(visible)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return _Truth(truth)


def score(truth: _Truth, frames: list[int], boxes: list[np.ndarray], ids: list[int]) -> dict[str, float]:
    """IDF1, identity switches and ids found, for the reported ``ids`` of the records."""
    people = sorted({p for f in truth.frames for p, _ in f})
    gt_total = sum(len(f) for f in truth.frames)
    reported = sorted(set(ids))
    overlap = np.zeros((len(people), len(reported)))
    last: dict[str, int] = {}
    switches = 0
    for frame, box, rid in sorted(zip(frames, boxes, ids), key=lambda r: r[0]):
        person = truth.person_at(frame, box)
        if person is None:
            continue
        overlap[people.index(person), reported.index(rid)] += 1
        if person in last and last[person] != rid:
            switches += 1
        last[person] = rid
    rows, cols = linear_sum_assignment(-overlap)
    idtp = overlap[rows, cols].sum()
    idf1 = 2 * idtp / (gt_total + len(ids))
    return {"idf1": float(idf1), "switches": switches, "ids": len(reported), "true": len(people)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames-per-shot", type=int, default=40)
    ap.add_argument("--same-person-max", type=float, nargs="*", default=[None])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "reentry.mp4"
        truth = build(video, args.frames_per_shot)
        print(f"# persons on a generated re-entry sequence ({len(truth.frames)} frames, "
              f"{sum(len(f) for f in truth.frames)} visible faces, {len(PLAN)} shots: "
              + ", ".join(f"{p} {k}" for p, k in PLAN) + f"); {machine()}")
        for k, threshold in enumerate(args.same_person_max):
            out = Path(tmp) / f"out{k}"
            cfg = load_config(None, {"parquet": {"out": str(out)}})
            if threshold is not None:
                cfg.identity.same_person_max = threshold
            started = time.perf_counter()
            summary = analyze(video, cfg, stream_id="reentry")
            seconds = time.perf_counter() - started
            records = read_records(out, "reentry")
            print(f"same_person_max {cfg.identity.same_person_max}: {summary['frames']} frames, "
                  f"{summary['faces']} records, {summary['tracks']} tracks, {summary['persons']} persons "
                  f"in {seconds:.1f} s")
            frames = [r.frame_index for r in records]
            boxes = [np.asarray(r.box) for r in records]
            for name, ids in (("person_id", [r.person_id if r.person_id is not None else -1 for r in records]),
                              ("track_id", [r.track_id for r in records])):
                rows.append((cfg.identity.same_person_max, name, score(truth, frames, boxes, ids)))
    print("| same_person_max | ids | IDF1 | identity switches | ids found | true persons |")
    print("|---|---|---|---|---|---|")
    for threshold, name, s in rows:
        print(f"| {threshold} | {name} | {s['idf1']:.3f} | {s['switches']} | {s['ids']} | {s['true']} |")


if __name__ == "__main__":
    main()
