"""CPU seconds a live frame costs, per step, with the detector on every frame and with
track-driven detection (the detector only every N frames): robust to a loaded machine, because it
counts this thread's CPU time (``time.thread_time``), not the wall clock.

Per frame of a 720p one-face clip (default ``lp_s18.mp4``, the live benchmark's camera),
each step as the service runs it, one thread, one intra-op thread per model:

- decode: H.264 decoding of the frame (PyAV, one thread: the service decodes with more,
  for the same CPU);
- convert: the decoded frame to RGB (``to_ndarray``; a live source now skips it for the
  frames it drops);
- shrink: ``session.detector_input`` to ``detector.max_side``;
- detect: RetinaFace on the shrunk frame;
- crop + regress: the crop rule and the shipped regressor on the frame's face (batch 1),
  one view, as a camera's crops are read (``model.mirror_average: files``; a file's crops
  cost about twice the network), on ``--runtime`` (``model.runtime``; default auto: ONNX
  Runtime);
- follow: ``Follower`` bookkeeping for a frame (plan, track, observe), detector boxes given;
- identity: the patch cut and dlib's embedding of the face (every 5th frame measured), which
  a stream pays once per sample: ``identity.first_samples`` at a track's start, then one
  every ``identity.every_s``; its share per frame is printed at the steady rate.

Then the cost of a frame with ``every_frames`` N: decode + convert + follow +
crop/regress + (shrink + detect) / N, and the frames/s it allows per core and on 2 cores (no decode,
Ray, Redis or Parquet: an upper bound, the ratio between the settings is what to read).

    .venv/bin/python bench/frame_cost.py [--video CLIP] [--frames 60] [--every 1 5 10] [--runtime torch]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine
from streamer.config import DetectorConfig, IdentityConfig, TrackerConfig
from streamer.pipeline.session import detector_input
from streamer.sources.frames import Frame
from streamer.tracking.follow import Follower
from workers.crops import CropRule, crop_faces, to_tensor
from workers.detector import FaceDetector
from workers.identity import FaceIdentity, IdentityCropRule
from workers.regressor import Regressor
from workers.runtime import Runtime

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "video"


def cpu(fn, *args):
    t0 = time.thread_time()
    out = fn(*args)
    return out, time.thread_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", default=str(REAL / "lp_s18.mp4"))
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--every", type=int, nargs="+", default=[1, 5, 10])
    ap.add_argument("--runtime", default=Runtime.AUTO.value, choices=[r.value for r in Runtime],
                    help="what runs the regressor's network (model.runtime)")
    ap.add_argument("--checkpoint", help="regressor checkpoint to time (default: the shipped one)")
    args = ap.parse_args()
    info = machine()
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), load average {info['loadavg']}, commit {info['commit']}; "
          f"regressor on {args.runtime}, one view")
    torch.set_num_threads(1)
    cfg = DetectorConfig()
    detector, regressor = FaceDetector(cfg, threads=1), Regressor.load(args.checkpoint, device="cpu",
                                                                          runtime=Runtime(args.runtime))
    rule = CropRule.from_meta(regressor.meta)
    follower = Follower(TrackerConfig(), 1, None)
    identity, patch_rule = FaceIdentity(), IdentityCropRule()
    steps = ("decode", "convert", "shrink", "detect", "crop + regress", "follow", "identity")
    costs: dict[str, list[float]] = {k: [] for k in steps}
    with av.open(args.video) as container:
        container.streams.video[0].thread_count = 1   # decoded in this thread, so counted
        frames = container.decode(video=0)
        for i in range(args.frames):
            decoded, t = cpu(next, frames, None)
            if decoded is None:
                break
            costs["decode"].append(t)
            image, t = cpu(lambda: decoded.to_ndarray(format="rgb24"))
            costs["convert"].append(t)
            (small, scale), t = cpu(detector_input, image, cfg.max_side)
            costs["shrink"].append(t)
            (found,), t = cpu(detector.detect, [small])
            costs["detect"].append(t)
            frame = Frame(i, i / 30, image)
            t0 = time.thread_time()
            cut = follower.plan(frame).cut
            tracks = follower.track(frame, cut, found.boxes / scale, found.scores)
            follow = time.thread_time() - t0
            boxes = np.stack([t.box for t in tracks]) if tracks else np.zeros((0, 4))
            t0 = time.thread_time()
            crops, affines = crop_faces(image, boxes, rule)
            one_view = np.zeros(len(crops), bool)   # a camera's crops are not mirror-averaged
            pred = regressor(to_tensor(crops, rule), one_view) if len(crops) else None
            costs["crop + regress"].append(time.thread_time() - t0)
            t0 = time.thread_time()
            if pred is not None:
                follower.observe(i, [t.track_id for t in tracks], pred.landmarks, affines, pred.presence)
            costs["follow"].append(follow + time.thread_time() - t0)
            if i % 5 == 0 and len(boxes):
                t0 = time.thread_time()
                identity.embed(patch_rule.cut(image, boxes[:1]))
                costs["identity"].append(time.thread_time() - t0)
    ms = {k: 1000 * float(np.median(v)) for k, v in costs.items()}
    print(f"{Path(args.video).name}, {len(costs['detect'])} frames {image.shape[1]}x{image.shape[0]}; "
          "median CPU ms per frame: " + ", ".join(f"{k} {v:.1f}" for k, v in ms.items()))
    print(f"{'every_frames':>12s} {'CPU ms/frame':>12s} {'frames/s/core':>13s} "
          f"{'frames/s on 2 cores':>19s} {'vs 1':>5s} {'+ identity':>10s}")
    base = None
    # a steady face is embedded once every every_s: per frame, at 30 frames/s
    ident = ms["identity"] / (IdentityConfig().every_s * 30)
    for n in args.every:
        per = ms["decode"] + ms["convert"] + ms["follow"] + ms["crop + regress"] + (ms["shrink"] + ms["detect"]) / n
        base = base or per
        print(f"{n:12d} {per:12.1f} {1000 / per:13.1f} {2000 / per:19.1f} {base / per:5.2f} {100 * ident / per:9.1f}%")
    print(f"identity: {ms['identity']:.1f} ms a sample; at one every {IdentityConfig().every_s:g} s of a 30 frames/s "
          f"camera {ident:.2f} ms a frame per face (a track's first {IdentityConfig().first_samples} samples "
          f"come {IdentityConfig().first_every_s:g} s apart)")


if __name__ == "__main__":
    main()
