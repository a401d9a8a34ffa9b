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
import datetime
import json
import math
import os
import shutil
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Callable

from streamer import runtime
from streamer.config import Config
from streamer.redis_server import EmbeddedRedis
from streamer.sinks.parquet_sink import ParquetSink, partition_name
from streamer.sinks.redis_sink import RedisSink, redact_url
from streamer.source import open_source

ProgressCallback = Callable[[dict], None]
_POLL_S = 0.25


def analyze(video: str | os.PathLike, cfg: Config, *, address: str | None = None,
            stream_id: str | None = None, annotate: str | os.PathLike | None = None,
            on_progress: ProgressCallback | None = None,
            on_annotate_progress: Callable[[int, int | None], None] | None = None) -> dict:
    """Analyse ``video`` into ``cfg.parquet.out``; returns the summary also written there.

    ``on_progress`` gets the session's progress dicts while it runs; with ``annotate``,
    ``on_annotate_progress`` gets (frames written, frames expected) while that video is made.

    Bad input (SourceNotFound / NotAVideo, CheckpointError, SinkError for an unreachable
    Redis, runtime.RuntimeStartError for an address nobody listens on) raises before
    anything is started or written. Any later error propagates after ``summary.json``
    says ``failed``.
    """
    stream_id = stream_id or Path(video).stem
    ckpt_path, meta = check_inputs(str(video), cfg)
    if address:
        runtime.check_address(address)
    # actors may run in another working directory: give them an absolute path
    video = str(Path(video).resolve()) if Path(video).exists() else str(video)
    import ray

    from streamer.replicas import Replicas
    from streamer.session import launch

    cfg = copy.deepcopy(cfg)
    out = Path(cfg.parquet.out).resolve()
    cfg.parquet.out = str(out)  # actors may run in another working directory
    summary_path = out / "summary.json"
    out.mkdir(parents=True, exist_ok=True)
    summary_path.unlink(missing_ok=True)  # an old summary must not vouch for this run
    base = {
        "video": video, "stream_id": stream_id, "out": str(out), "checkpoint": str(ckpt_path),
        "face_model": {k: meta["face_model"].get(k) for k in ("version", "sha256")}, "started_at": _now(),
    }
    t0 = time.monotonic()
    try:
        with ExitStack() as stack:
            redis_url, redis_label = _redis(cfg, stack)
            base["redis"] = redis_label
            ray_rt = runtime.start(address, num_cpus=_cpus_needed(cfg))
            stack.callback(ray_rt.stop)
            replicas = Replicas.start(cfg, str(ckpt_path))
            stack.callback(replicas.stop)
            replicas.ready()
            version = ray.get(replicas.info())["version"]
            shutil.rmtree(out / "records" / f"stream={partition_name(stream_id)}", ignore_errors=True)
            sinks = [partial(RedisSink, cfg.redis, stream_id, redis_url),
                     partial(ParquetSink, cfg.parquet, stream_id, _parquet_metadata(meta, version, video))]
            session = launch(stream_id, video, cfg, replicas, sinks)
            stack.callback(ray.kill, session)
            result = _wait(session, on_progress)
        summary = {**base, "status": "ok", "model_version": version, **result,
                   "wall_seconds": time.monotonic() - t0}
        if annotate is not None:
            summary["annotated"] = str(_annotate(video, out, stream_id, annotate, cfg, on_annotate_progress))
    except BaseException as e:
        _write_json(summary_path, {**base, "status": "failed", "error": _describe(e),
                                   "wall_seconds": time.monotonic() - t0, "finished_at": _now()})
        raise
    summary["finished_at"] = _now()
    _write_json(summary_path, summary)
    return summary


def check_inputs(video: str, cfg: Config) -> tuple[Path, dict]:
    """Fail fast on bad input; returns the checkpoint path and its metadata."""
    with open_source(video, cfg.source):
        pass  # opening decodes the first frame: the file is a video we can read
    ckpt_path, meta = check_checkpoint(cfg)
    if cfg.redis.url:
        RedisSink.check(cfg.redis.url, cfg.redis.connect_timeout_s)
    return ckpt_path, meta


def check_checkpoint(cfg: Config) -> tuple[Path, dict]:
    """The configured (or shipped) checkpoint's path and metadata, once it is known to be
    trained, complete, loadable and made for this installation's face model."""
    from workers import checkpoint
    from workers.checkpoint import CheckpointError
    from workers.crops import CropRule

    ckpt_path = Path(cfg.model.checkpoint) if cfg.model.checkpoint else checkpoint.default_path()
    meta = checkpoint.load_meta(ckpt_path)
    try:
        CropRule.from_meta(meta)
        checkpoint.load(ckpt_path)  # the weights too: a replica failing later says less
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{ckpt_path}: unusable checkpoint ({type(e).__name__}: {e})") from None
    return ckpt_path, meta


def _redis(cfg: Config, stack: ExitStack) -> tuple[str, str]:
    """URL the sinks use and how the summary names it (never with a password)."""
    if cfg.redis.url:
        return cfg.redis.url, redact_url(cfg.redis.url)
    server = stack.enter_context(EmbeddedRedis())
    return server.url, "embedded (stopped after the run)"


def _cpus_needed(cfg: Config) -> int:
    """Logical CPUs a private cluster needs for the replicas (sessions reserve none)."""
    m = cfg.model
    need = (m.detector_replicas + m.regressor_replicas) * m.num_cpus_per_replica
    return max(2, math.ceil(need))


def _parquet_metadata(meta: dict, version: str, video: str) -> dict[str, str]:
    fm = meta["face_model"]
    return {
        "facestream.model_version": version,
        "facestream.checkpoint": str(meta.get("name", "")),
        "facestream.face_model_version": str(fm.get("version", "")),
        "facestream.face_model_sha256": str(fm.get("sha256", "")),
        "facestream.source": video,
    }


def _wait(session, on_progress: ProgressCallback | None) -> dict:
    """Poll the session's progress until its run finishes; its error is re-raised as is."""
    import ray

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
        if isinstance(e.cause, Exception):
            raise e.cause from None
        raise


def _annotate(video: str, out: Path, stream_id: str, target, cfg: Config, on_progress) -> Path:
    from streamer.annotate import annotate_video
    from streamer.dataset import read_records

    return annotate_video(video, read_records(out, stream_id), Path(target), cfg, on_progress)


def _write_json(path: Path, data: dict) -> None:
    """Temp file + rename: readers see the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _describe(e: BaseException) -> str:
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    return f"{type(e).__name__}: {e}"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
