"""Mirror flips: how often a tracked face's yaw jumps sign from one reading to the next,
in the network's raw output and in the published (smoothed) pose, on real clips.

A flip is two readings of one track at most five frames apart whose yaw has opposite
signs and differs by more than 40°: no head turns that fast, so it is a misreading (a
turned or blurred face read as its mirror image, or a crop that slipped off the face).
Each clip goes through ``facestream analyze`` once, with the shipped defaults (the
outlier gate of :mod:`streamer.pipeline.outliers` on); the same raw readings are then
fed again, per track and in order, through a smoother without the gate, so the two
published poses come from the same network outputs in one run. The replay with the
gate must give back what analyze published (checked: the largest difference is printed).
Printed per clip: pairs of consecutive readings, raw flips, published flips with and
without the gate, readings held out, and how far the published yaw moved (mean and
largest |Δ| between gate and no gate, degrees; 0 on a clip with nothing held).

    .venv/bin/python bench/yaw_flips.py [--keep DIR] [CLIP ...]   (default: the multi-face
                                                      real clips and three talking heads)
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine  # noqa: E402
from streamer.config import SmoothingConfig  # noqa: E402
from streamer.data.dataset import read_records  # noqa: E402
from streamer.data.record import BoxSource, FaceRecord  # noqa: E402
from streamer.pipeline.outliers import AcceptAll  # noqa: E402
from streamer.pipeline.smoothing import TrackSmoother, gate_for  # noqa: E402
from workers import checkpoint, presence  # noqa: E402
from workers.pose import euler_from_matrix, matrix_from_quaternion  # noqa: E402

REAL = REPO.parent / "shared" / "data" / "real" / "video"
CLIPS = ("crowd_1080p.mp4", "cuts/documentary_576p.mp4", "cuts/film_trailer_vfr.mp4",
         "lp_d11.mp4", "vr_4.mp4", "st_wda_aoc.mp4")
MAX_GAP = 5          # frames: a flip is within this many
FLIP_DEG = 40.0


def is_flip(a: float, b: float) -> bool:
    return bool(np.sign(a) != np.sign(b) and abs(a - b) > FLIP_DEG)


def count_flips(readings: list[tuple[int, float]]) -> int:
    """Readings of one track ((frame index, yaw) in frame order) that flip against a
    reading of the ``MAX_GAP`` frames before: a swing of the smoothed yaw over a few
    frames counts as one of the raw yaw between two."""
    return sum(1 for j, (fb, b) in enumerate(readings)
               if any(fb - fa <= MAX_GAP and is_flip(a, b) for fa, a in readings[:j]))


def by_track(records: list[FaceRecord]) -> dict[int, list[FaceRecord]]:
    tracks: dict[int, list[FaceRecord]] = {}
    for r in records:
        tracks.setdefault(r.track_id, []).append(r)
    return {t: sorted(rs, key=lambda r: r.frame_index) for t, rs in tracks.items()}


def replay_yaw(records: list[FaceRecord], smoother: TrackSmoother, threshold: float | None) -> list[float]:
    """The published yaw of one track's records fed again through ``smoother``, each
    reading trusted as the session trusts it (streamer.pipeline.records)."""
    out = []
    for r in records:
        trusted = r.box_source == BoxSource.DETECTOR or threshold is None or not r.presence < threshold
        s = smoother.update(r.pts, r.expression_raw, r.quaternion_raw, r.pose_raw[3:], r.shape_raw,
                            trusted=trusted)
        out.append(float(euler_from_matrix(matrix_from_quaternion(s.quaternion))[0]))
    return out


@dataclass
class ClipFlips:
    clip: str
    tracks: int
    pairs: int
    raw: int
    published: int          # with the gate (analyze's output)
    ungated: int            # the same readings through a smoother without it
    held: int
    replay_error: float     # largest |published - replayed with the gate| yaw, degrees
    moved_mean: float       # mean |gate - no gate| published yaw, degrees
    moved_max: float


def measure(clip: Path, tmp: Path) -> ClipFlips:
    out = tmp / clip.stem
    done = subprocess.run([sys.executable, "-m", "streamer.cli", "analyze", str(clip), "--out", str(out),
                           "--stream-id", "clip"], cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if done.returncode not in (0, 7):
        raise RuntimeError(f"analyze {clip.name} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    cfg = SmoothingConfig()
    probe = presence.load(checkpoint.default_path())
    threshold = None if probe is None else float(probe.threshold)
    tracks = by_track(read_records(out, "clip"))
    raw = published = ungated = held = pairs = 0
    replay_error, moved = 0.0, []
    for records in tracks.values():
        frames = [r.frame_index for r in records]
        yaw_pub = [float(r.pose[0]) for r in records]
        gated = TrackSmoother(cfg, gate_for(cfg))
        yaw_gated = replay_yaw(records, gated, threshold)
        yaw_plain = replay_yaw(records, TrackSmoother(cfg, AcceptAll()), threshold)
        pairs += max(0, len(records) - 1)
        raw += count_flips(list(zip(frames, [float(r.pose_raw[0]) for r in records])))
        published += count_flips(list(zip(frames, yaw_pub)))
        ungated += count_flips(list(zip(frames, yaw_plain)))
        held += gated.gate.held
        replay_error = max(replay_error, float(np.max(np.abs(np.subtract(yaw_pub, yaw_gated)))))
        moved.extend(np.abs(np.subtract(yaw_gated, yaw_plain)))
    return ClipFlips(clip.name, len(tracks), pairs, raw, published, ungated, held, replay_error,
                     float(np.mean(moved)) if moved else 0.0, float(np.max(moved)) if moved else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="*", help=f"videos (default: {', '.join(CLIPS)} under {REAL})")
    ap.add_argument("--keep", type=Path, help="write analyze's outputs here (default: a temporary folder)")
    args = ap.parse_args()
    clips = [Path(c) for c in args.clips] or [REAL / c for c in CLIPS]
    print(machine())
    print(f"{'clip':28s} {'tracks':>6s} {'pairs':>6s} {'raw':>4s} {'published':>9s} {'no gate':>7s} "
          f"{'held':>5s} {'replay':>7s} {'moved mean/max':>15s}")
    total = np.zeros(5, int)
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            c = measure(clip, args.keep or Path(tmp))
            total += (c.pairs, c.raw, c.published, c.ungated, c.held)
            print(f"{c.clip:28s} {c.tracks:6d} {c.pairs:6d} {c.raw:4d} {c.published:9d} {c.ungated:7d} "
                  f"{c.held:5d} {c.replay_error:7.3f} {c.moved_mean:7.2f}/{c.moved_max:6.1f}", flush=True)
    print(f"{'all':28s} {'':6s} {total[0]:6d} {total[1]:4d} {total[2]:9d} {total[3]:7d} {total[4]:5d}")


if __name__ == "__main__":
    main()
