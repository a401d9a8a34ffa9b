"""Throughput of the full pipeline against a bare single-process loop, in one run.

    .venv/bin/python bench/pipeline_vs_loop.py [VIDEO] [--checkpoint PATH] [--batch N]

The loop does only decode → detect → crop → regress, one detector batch at a time, with
the same models, the same thread settings (one intra-op thread each, as in the replicas)
and the same detector batch size; the pipeline (``analyze``: private Ray, shared model
replicas, a session actor, embedded Redis, Parquet) also tracks, smooths and publishes.
Both clocks start once the models are loaded and the source is open (the session's
``seconds``); the pipeline's wall time with Ray start-up is printed beside it. Machines here are noisy:
compare the ratio, not the absolute numbers.

Uses the shipped checkpoint when there is one, else builds a tiny untrained network in
the shipped format (and says so: the ratio then mostly measures the detector).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamer.config import load_config  # noqa: E402


def checkpoint_for_bench(given: str | None, tmp: Path) -> tuple[str, str]:
    """(path, description): the given or shipped checkpoint, or a tiny one built here."""
    from workers import checkpoint, face_model
    from workers.networks import FaceRegressor

    if given:
        return given, f"{given} (given)"
    shipped = checkpoint.default_path()
    try:
        checkpoint.load_meta(shipped)
        return str(shipped), f"{shipped.name} (shipped)"
    except checkpoint.CheckpointError:
        pass
    fm = face_model.load()
    meta = {"name": "bench-tiny", "trained": True,
            "crop": {"size": 128, "enlarge": 0.25, "mean": [0.5] * 3, "std": [0.5] * 3},
            "face_model": fm.meta()}
    path = checkpoint.save(FaceRegressor("tiny").eval(), meta, tmp / "bench-tiny")
    return str(path), "NO SHIPPED CHECKPOINT: a tiny untrained network built for this run"


def bare_loop(video: str, cfg) -> tuple[int, float]:
    """Frames and seconds of decode → detect → crop → regress in one process: the
    library's own steps (workers.pipeline.detect_crop_regress), one detector batch of
    frames at a time, its crops regressed together."""
    import torch

    from streamer.sources.files import open_source
    from workers.crops import CropRule
    from workers.detector import FaceDetector
    from workers.pipeline import detect_crop_regress
    from workers.regressor import Regressor

    torch.set_num_threads(1)
    detector = FaceDetector(cfg.detector, threads=1)
    regressor = Regressor.load(cfg.model.checkpoint, cfg.model.device)
    rule = CropRule.from_meta(regressor.meta)
    frames = 0
    with open_source(video, cfg.source) as source:
        t0 = time.perf_counter()  # like the session's clock: models loaded, source open
        batch = []
        for frame in source:
            batch.append(frame.image)
            if len(batch) == cfg.detector.batch_size:
                detect_crop_regress(batch, detector, regressor, rule)
                frames += len(batch)
                batch = []
        if batch:
            detect_crop_regress(batch, detector, regressor, rule)
            frames += len(batch)
    return frames, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(REPO / "samples" / "obama.mp4"))
    parser.add_argument("--checkpoint")
    parser.add_argument("--batch", type=int, default=None, help="detector batch size (default: config)")
    args = parser.parse_args()

    from streamer.pipeline.analyze import analyze

    with tempfile.TemporaryDirectory(prefix="facestream-bench-") as tmp:
        ckpt, described = checkpoint_for_bench(args.checkpoint, Path(tmp))
        overrides = {"model": {"checkpoint": ckpt}, "parquet": {"out": str(Path(tmp) / "out")}}
        if args.batch:
            overrides["detector"] = {"batch_size": args.batch}
        cfg = load_config(overrides=overrides)
        print(f"video:      {args.video}")
        print(f"checkpoint: {described}")
        loop_frames, loop_s = bare_loop(args.video, cfg)
        summary = analyze(args.video, cfg, stream_id="bench")

    loop_fps = loop_frames / loop_s
    print(f"bare loop:  {loop_frames} frames in {loop_s:.2f} s = {loop_fps:.1f} frames/s "
          "(decode, detect, crop, regress; one process, one thread per model)")
    print(f"pipeline:   {summary['frames']} frames in {summary['seconds']:.2f} s = {summary['fps']:.1f} frames/s "
          f"({summary['faces']} faces, {summary['tracks']} tracks; {summary['wall_seconds']:.1f} s "
          "with Ray start-up)")
    print(f"ratio:      pipeline / loop = {summary['fps'] / loop_fps:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
