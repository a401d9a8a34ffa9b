"""``facestream analyze VIDEO``: one file through the whole pipeline, start to finish.

Everything that can be wrong with the user's input is checked before anything starts
(the video opens and decodes, the checkpoint is trained and matches the face model, a
given Redis answers), so mistakes fail in a second with one clear message instead of
after Ray has started. Then: Redis (embedded unless ``cfg.redis.url``), Ray (private
unless an address is given), the shared model replicas, one session for the file, and
progress reported to an injected callback while it runs. Everything started is stopped
again, whatever happens.

``OUT/summary.json`` is written last and atomically, with ``"status": "ok"`` only when
every requested output is complete; a failed run leaves ``"status": "failed"`` and the
error, so partial outputs never look complete. A rerun replaces the previous records of
the same stream id in ``OUT`` (they describe an older run of the same stream).

Ray, torch and the model code are imported where they are first needed, so that a
mistyped path is reported at once instead of after seconds of imports.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Protocol

from streamer.clock import now_iso
from streamer.config import Config
from streamer.data.sinks.parquet_sink import partition_name
from streamer.pipeline import runtime
from streamer.pipeline.status import StreamProgress, StreamSummary
from streamer.sources.files import open_source
from streamer.sources.urls import SourceKind, check_source, redact

ProgressCallback = Callable[[StreamProgress], None]
SourceEventCallback = Callable[[str, dict], None]   # a live source's ("reconnecting"|"reconnected", info)


class Annotator(Protocol):
    """What ``--annotate`` does after a run: draw the stream's records onto its video (the
    report layer's, injected by the CLI so that the pipeline never imports what sits above it)."""

    def __call__(self, video: str, out: Path, stream_id: str) -> Path: ...
_POLL_S = 0.25


def analyze(video: str | os.PathLike, cfg: Config, *, address: str | None = None,
            stream_id: str | None = None, annotate: Annotator | None = None,
            on_progress: ProgressCallback | None = None, on_source_event: SourceEventCallback | None = None) -> dict:
    """Analyse ``video`` into ``cfg.parquet.out``; returns the summary also written there.

    ``on_progress`` gets the session's :class:`StreamProgress` while it runs, and
    ``on_source_event`` a live source's attempts while the input is checked (its first
    connection, which may take up to ``source.give_up_s``); ``annotate``
    (the CLI's ``--annotate``, from the report layer above) runs after the stream, and its
    video is in the summary.

    Bad input (SourceNotFound / NotAVideo, CheckpointError, SinkError for an unreachable
    Redis, runtime.RuntimeStartError for an address nobody listens on) raises before
    anything is started or written. Any later error propagates after ``summary.json``
    says ``failed``.
    """
    stream_id = stream_id or Path(video).stem
    ckpt_path, meta = check_inputs(str(video), cfg, on_source_event)
    if address:
        runtime.check_address(address)
    # actors may run in another working directory: give them an absolute path
    video = str(Path(video).resolve()) if Path(video).exists() else str(video)
    from streamer.pipeline import backend
    from streamer.pipeline.session import launch

    cfg = copy.deepcopy(cfg)
    out = Path(cfg.parquet.out).resolve()
    cfg.parquet.out = str(out)  # actors may run in another working directory
    summary_path = out / "summary.json"
    out.mkdir(parents=True, exist_ok=True)
    summary_path.unlink(missing_ok=True)  # an old summary must not vouch for this run
    base = {
        "video": video, "stream_id": stream_id, "out": str(out), "checkpoint": str(ckpt_path),
        "face_model": {k: meta["face_model"].get(k) for k in ("version", "sha256")}, "started_at": now_iso(),
    }
    t0 = time.monotonic()
    try:
        with ExitStack() as stack:
            base["redis"] = redact(cfg.redis.url) if cfg.redis.url else "embedded (stopped after the run)"
            ray_rt = runtime.start(address, num_cpus=backend.cpus_needed(cfg))
            stack.callback(ray_rt.stop)
            shared = backend.start(cfg, ckpt_path, meta)
            stack.callback(shared.stop)
            version = shared.version
            shutil.rmtree(out / "records" / f"stream={partition_name(stream_id)}", ignore_errors=True)
            live = check_source(video, "/").kind != SourceKind.FILE   # as open_source reads it
            session = launch(stream_id, video, cfg, shared.replicas, shared.sinks(cfg, stream_id, video, live=live),
                             redis_url=shared.redis_url)
            stack.callback(_kill, session)
            result = _wait(session, on_progress)
        summary = {**base, "status": "ok", "model_version": version, **result.to_json(),
                   "wall_seconds": time.monotonic() - t0}
        if annotate is not None:
            summary["annotated"] = str(annotate(video, out, stream_id))
    except BaseException as e:
        _write_json(summary_path, {**base, "status": "failed", "error": _describe(e),
                                   "wall_seconds": time.monotonic() - t0, "finished_at": now_iso()})
        raise
    summary["finished_at"] = now_iso()
    _write_json(summary_path, summary)
    return summary


def check_inputs(video: str, cfg: Config,
                 on_source_event: SourceEventCallback | None = None) -> tuple[Path, dict]:
    """Fail fast on bad input; returns the checkpoint path and its metadata."""
    with open_source(video, cfg.source, on_event=on_source_event):
        pass  # opening decodes the first frame: the file is a video we can read
    from streamer.pipeline.backend import check_services

    return check_services(cfg)


def _kill(actor) -> None:
    import ray

    ray.kill(actor)


def _wait(session, on_progress: ProgressCallback | None) -> StreamSummary:
    """Poll the session's progress until its run finishes; its error is re-raised as is."""
    import ray

    from streamer.pipeline.ray_errors import root_cause

    run = session.run.remote()
    while True:
        done, _ = ray.wait([run], timeout=_POLL_S)
        if on_progress is not None:
            on_progress(ray.get(session.progress.remote()))
        if done:
            break
    try:
        return ray.get(run)
    except ray.exceptions.RayTaskError as e:
        cause = root_cause(e)
        if cause is e or not isinstance(cause, Exception):
            raise
        raise cause from None


def _write_json(path: Path, data: dict) -> None:
    """Temp file + rename: readers see the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _describe(e: BaseException) -> str:
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    return f"{type(e).__name__}: {e}"

