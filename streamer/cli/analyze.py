"""``analyze`` (a video file through the whole pipeline into Parquet and Redis) and
``report`` (the HTML report of such an output directory).
"""
from __future__ import annotations

import sys
from pathlib import Path

from streamer.cli.errors import UserError
from streamer.cli.progress import FrameBar, ProgressBar, SourceAttempts


def analyze_command(args) -> int:
    from streamer.config import load_config
    from streamer.pipeline.analyze import analyze

    overrides: dict = {}
    if args.out:
        overrides.setdefault("parquet", {})["out"] = args.out
    if args.redis_url:
        overrides.setdefault("redis", {})["url"] = args.redis_url
    if args.checkpoint:
        overrides.setdefault("model", {})["checkpoint"] = args.checkpoint
    if args.fps is not None:
        overrides.setdefault("source", {})["fps"] = args.fps
    if args.every is not None:
        overrides.setdefault("source", {})["every"] = args.every
    cfg = load_config(args.config, overrides)
    live = _live_label(args.video)
    if live is not None:
        print(f"facestream: connecting to {live} (giving up after {cfg.source.give_up_s:g} s without a frame)",
              file=sys.stderr)
    bar, annotate_bar = ProgressBar(live or "source"), FrameBar("annotate")
    def annotate(video: str, out: Path, stream_id: str) -> Path:
        from streamer.data.dataset import read_records
        from streamer.report.annotate import annotate_video
        return annotate_video(video, read_records(out, stream_id), Path(args.annotate), cfg, annotate_bar)
    try:
        summary = analyze(args.video, cfg, address=args.address, stream_id=args.stream_id,
                          annotate=annotate if args.annotate else None, on_progress=bar,
                          on_source_event=SourceAttempts(live) if live is not None else None)
    finally:
        bar.close()
        annotate_bar.close()
    where = Path(summary["out"]) / "summary.json"
    if summary["faces"] == 0:
        raise UserError(f"no face found in {args.video} ({summary['frames']} frames analysed); "
                        f"summary: {where}", 7)
    persons = f" of {_count(summary['persons'], 'person')}" if summary.get("persons") else ""
    print(f"{_count(summary['frames'], 'frame')}, {_count(summary['faces'], 'face')} in "
          f"{_count(summary['tracks'], 'track')}{persons} "
          f"at {summary['fps']:.1f} frames/s -> {summary['out']} (summary: {where})")
    if "annotated" in summary:
        print(f"annotated video: {summary['annotated']}")
    return 0


def _live_label(video: str) -> str | None:
    """The URL as it may be shown (credentials masked) when ``video`` is a live source,
    else None; a URL the policy refuses is left for analyze to refuse, with its reason."""
    from streamer.sources.frames import SourceError
    from streamer.sources.urls import SourceKind, check_source, redact

    try:
        live = check_source(video, "/").kind != SourceKind.FILE
    except SourceError:
        return None
    return redact(video) if live else None


def report_command(args) -> int:
    out = Path(args.out_dir)
    if not out.is_dir():
        raise UserError(f"{out}: no such output directory", 3)
    if not (out / "records").is_dir():
        raise UserError(f"{out}: not a facestream output directory (no records/ inside)", 3)
    from streamer.report.html import write_report

    print(write_report(out))
    return 0


def _count(n: int, noun: str) -> str:
    """``1 track``, ``2 tracks``: the summary line reads as a sentence."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
