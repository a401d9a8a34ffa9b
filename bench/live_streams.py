"""How many concurrent real-time 720p live streams the whole service sustains, and their latency.

    .venv/bin/python bench/live_streams.py [--video CLIP.mp4] [--max-streams 6] [--warmup 10]
                                           [--seconds 30] [--fps F | --source-fps F]
                                           [--servers shared|per-stream] [--json results.json]

One run starts the real service once (``streamer.service.server.serve_forever`` in a
thread of this process: private Ray, Ray Serve REST API on a free loopback port, the
StreamManager with the shared detector and regressor replicas and its embedded Redis,
Parquet under a temporary directory), with the shipped checkpoint (the fast default
backbone) and ``ray_config.yaml`` as it is. Then for N = 1, 2, 3, ... ``--max-streams``:

1. N streams are submitted over HTTP (``POST /streams``), each an RTSP client of a
   :class:`streamer.testbed.RtspServer` that plays ``--video`` in real time (looped). The
   server encodes the clip once at start and replays it (``replay=True``): cameras are
   other machines, and a live x264 encoder took 0.15 of this machine's 2 cores.
   ``--servers shared`` (default): one server, N clients, all sent the same access units,
   so the N streams are frame-synchronous (their frames reach the detector together: good
   for cross-stream batching, bad for queueing) and the harness's own CPU cost does not
   grow with N. ``--servers per-stream``: one server per stream, each started at its own
   time, so the streams are unsynchronised, as separate cameras are.
2. Once every stream is ``running``, ``--warmup`` seconds pass, then the window of
   ``--seconds`` is measured between two snapshots of ``GET /streams`` and ``GET /metrics``:
   per stream the frames processed per second (Δframes / Δt; the status's own
   ``processed_fps``, a 5 s rate, is reported beside it), the dropped-frame fraction
   Δdropped / (Δframes + Δdropped), and the status's ``latency_p50_s`` /
   ``latency_p99_s`` at the end of the window (a frame's data arriving → records written to Redis,
   exact over the stream's last 2048 frames: with the defaults that reaches back into
   the warm-up) with its parts (``latency_stages``: waiting at the source, tracking,
   the regressor's round trip, publishing), and, from the window alone, the share of frames slower than 1 s (the
   ``/metrics`` latency histogram, whose 1 s bucket bound makes it exact; quantiles
   interpolated in its coarse buckets go to the JSON only); per N the regressor's mean
   batch (crops) over the window from ``/metrics``, and CPU: cores used by this process
   tree (service + harness), by the harness process alone (RTSP server, HTTP polling), by
   the rest of the machine and by niced processes (``/proc/stat``: a background job at
   nice 10 yields to the service, other work at nice 0 competes with it).
3. The N streams are stopped (``DELETE``) before the next N.

A stream is *real-time* when it processes at least 0.9 x the target rate and drops at most
5 % of the frames; the target is the source rate, or ``--fps`` when that is lower. The
answer is the largest N at which every stream is real-time. The run stops after an N
that clearly fails (a stream below 0.75 x target, above 25 % dropped, or not running) or
after two failing Ns in a row.

A file beside the cameras: ``--file-beside CLIP`` keeps one file stream of CLIP running
next to the N live streams for the whole of each N (submitted again whenever it ends;
the service's ``media_root`` is set to its directory). The file is not among the
measured streams; its frames/s over the window is reported beside them. With
``--priority live_first`` (or ``fifo``) the shared replicas serve waiting calls of live
streams first (or in order of arrival): ``model.priority``.

Lower rates, two ways: ``--fps F`` asks the service for F frames/s per stream (the API's
``fps`` field; the source still sends the clip's rate), ``--source-fps F`` makes the
RTSP server itself send F frames/s (a camera set to F fps: the clip plays slowed down,
the machine decodes only F frames/s per stream). The run warns when the service
processes a stream well above the ``--fps`` it was asked for.

Ray starts its worker processes (model replicas, sessions, Serve) at nice 15 by default,
below any job at nice 0-14 sharing the machine; this benchmark starts them at
``--worker-niceness`` (default 0, as the harness and the RTSP server run), so that a
background job at nice 10 yields to the service as intended.

On a CUDA machine the regressor replicas get ``--num-gpus-per-replica`` (by default 1 when
torch sees a GPU, as deploy/README.md asks for GPU nodes, or a share when there are more
replicas than GPUs); use ``--detector-replicas`` / ``--regressor-replicas`` to use more
cores. Run from anywhere: it changes to the repository root, whose ``ray_config.yaml`` the
service reads and from which Ray's workers import the package. Machines here are noisy:
the load average and the CPU taken by other processes are printed with every N.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamer.pipeline.status import StreamState  # noqa: E402 (standard library only)

sys.path.insert(0, str(REPO / "bench"))
from live_report import conclusion, print_n, summary_table  # noqa: E402
from live_service import (  # noqa: E402
    CpuMeter,
    MetricsClient,
    Service,
    add_histograms,
    free_port,
    histogram_delta,
    histogram_quantile,
    metric_sum,
    parse_metrics,
    share_above,
)
from machine import machine  # noqa: E402

DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "real" / "video" / "lp_s18.mp4"
REALTIME_FPS_RATIO = 0.9
REALTIME_MAX_DROP = 0.05
CLEAR_FAIL_FPS_RATIO = 0.75
CLEAR_FAIL_DROP = 0.25


class Interrupted(Exception):
    """SIGTERM: unwind like Ctrl-C so that everything is shut down."""


# ----------------------------------------------------------------------------- measuring


def snapshot(client, ids: list[str], cpu: CpuMeter) -> dict:
    """Statuses of the streams, /metrics and CPU counters, at (about) one instant."""
    t0 = time.monotonic()
    statuses = {s["id"]: s for s in client.streams() if s["id"] in ids}
    metrics = parse_metrics(client.metrics())
    t1 = time.monotonic()
    return {"t": (t0 + t1) / 2, "streams": statuses, "metrics": metrics, "cpu": cpu.snapshot()}


def measure_window(a: dict, b: dict, ids: list[str], target_fps: float, source_fps: float,
                   asked_fps: float | None) -> dict:
    """Per-stream and per-N results between snapshots ``a`` and ``b``."""
    dt = b["t"] - a["t"]
    streams, lat_parts = [], []
    for sid in ids:
        sa, sb = a["streams"].get(sid, {}), b["streams"].get(sid, {})
        frames = sb.get("frames", 0) - sa.get("frames", 0)
        dropped = sb.get("dropped_frames", 0) - sa.get("dropped_frames", 0)
        fps = frames / dt
        drop = dropped / (frames + dropped) if frames + dropped else 1.0
        hist = histogram_delta(a["metrics"], b["metrics"], "facestream_stream_latency_seconds", stream=sid)
        lat_parts.append(hist)
        state = sb.get("state")
        realtime = state == StreamState.RUNNING and fps >= REALTIME_FPS_RATIO * target_fps and drop <= REALTIME_MAX_DROP
        clear_fail = (state != StreamState.RUNNING or fps < CLEAR_FAIL_FPS_RATIO * target_fps or drop > CLEAR_FAIL_DROP)
        streams.append({
            "id": sid, "state": state, "frames": frames, "dropped": dropped,
            "fps": fps, "fps_ratio": fps / target_fps, "status_processed_fps": sb.get("processed_fps"),
            "received_fps": (frames + dropped) / dt, "status_source_fps": sb.get("source_fps"),
            "drop_fraction": drop, "latency_p50_s": sb.get("latency_p50_s"),
            "latency_p99_s": sb.get("latency_p99_s"), "lag_s": sb.get("lag_s"),
            "window_latency_p50_s": histogram_quantile(0.5, hist),
            "window_latency_p99_s": histogram_quantile(0.99, hist),
            "window_over_1s": share_above(hist, 1.0),
            "latency_frames": min(2048, sb.get("frames", 0)),
            "faces_per_frame": (sb.get("faces", 0) - sa.get("faces", 0)) / frames if frames else None,
            "reconnects": sb.get("reconnects", 0) - sa.get("reconnects", 0),
            "latency_stages": sb.get("latency_stages"),
            "last_error": sb.get("last_error"), "realtime": realtime, "clear_fail": clear_fail,
            "fps_ignored": bool(asked_fps and fps > 1.15 * asked_fps),
        })
    ma, mb = a["metrics"], b["metrics"]

    def grew(name: str) -> float:   # over the window
        return metric_sum(mb, name) - metric_sum(ma, name)

    batch_n = grew("facestream_regressor_batch_size_count")
    batch_sum = grew("facestream_regressor_batch_size_sum")
    det_n = grew("facestream_detector_latency_seconds_count")
    det_sum = grew("facestream_detector_latency_seconds_sum")
    det_frames = grew("facestream_detector_frames_total")
    crops = grew("facestream_regressor_crops_total")
    lat_all = add_histograms(lat_parts)
    p50s = sorted(s["latency_p50_s"] for s in streams if s["latency_p50_s"] is not None)
    p99s = [s["latency_p99_s"] for s in streams if s["latency_p99_s"] is not None]
    return {
        "n": len(ids), "window_s": dt, "target_fps": target_fps, "source_fps": source_fps,
        "streams": streams,
        "all_realtime": all(s["realtime"] for s in streams),
        "clear_fail": any(s["clear_fail"] for s in streams),
        "total_fps": sum(s["fps"] for s in streams),
        "min_fps": min(s["fps"] for s in streams),
        "max_drop_fraction": max(s["drop_fraction"] for s in streams),
        "latency_p50_s": p50s[len(p50s) // 2] if p50s else None,      # median of the streams' p50
        "latency_p99_s": max(p99s) if p99s else None,                   # worst stream's p99
        "window_latency_p50_s": histogram_quantile(0.5, lat_all),
        "window_latency_p99_s": histogram_quantile(0.99, lat_all),
        "window_over_1s": share_above(lat_all, 1.0),
        "regressor_batch_mean": batch_sum / batch_n if batch_n else None,
        "regressor_crops_per_s": crops / dt,
        "detector_frames_per_s": det_frames / dt,
        "detector_call_ms": 1000 * det_sum / det_n if det_n else None,
        "cpu": CpuMeter.cores(a["cpu"], b["cpu"]),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "fps_ignored": any(s["fps_ignored"] for s in streams),
        "stages": stage_summary([s["latency_stages"] for s in streams]),
    }


def stage_summary(per_stream: list[dict | None]) -> dict[str, dict[str, float]]:
    """Where the streams' latency goes (the status's ``latency_stages``): per stage the
    median of the streams' p50 and the worst stream's p99, as the latency columns are."""
    known = [s for s in per_stream if s]
    out = {}
    for stage in (known[0] if known else {}):
        p50s = sorted(s[stage]["p50_s"] for s in known if s.get(stage, {}).get("p50_s") is not None)
        p99s = [s[stage]["p99_s"] for s in known if s.get(stage, {}).get("p99_s") is not None]
        if p50s and p99s:
            out[stage] = {"p50_s": p50s[len(p50s) // 2], "p99_s": max(p99s)}
    return out


# ----------------------------------------------------------------------------- the run

class FileBeside:
    """Keeps one file stream running (submitting it again when it ends), in a thread;
    ``frames()`` is what its streams have processed so far."""

    def __init__(self, client, path: str, tag: str):
        self.client, self.path, self.tag = client, path, tag
        self.ids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="file-beside", daemon=True)

    def start(self) -> "FileBeside":
        self._thread.start()
        return self

    def _keep(self) -> None:
        while not self._stop.is_set():
            states = {s["id"]: s["state"] for s in self.client.streams() if s["id"] in self.ids}
            if not self.ids or states.get(self.ids[-1]) not in (StreamState.CONNECTING, StreamState.RUNNING, None):
                self.ids.append(self.client.submit(self.path, name=f"file-{self.tag}-{len(self.ids)}")["id"])
            self._stop.wait(0.5)

    def frames(self) -> int:
        return sum(s.get("frames", 0) for s in self.client.streams() if s["id"] in self.ids)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for sid in self.ids:
            try:
                self.client.stop(sid)
            except Exception:
                pass


class Bench:
    def __init__(self, args, client, cpu: CpuMeter):
        self.args = args
        self.client = client
        self.cpu = cpu
        self.servers: list = []

    def rtsp_urls(self, n: int) -> list[str]:
        """URLs for n streams, starting RTSP servers as needed (kept for later Ns)."""
        from streamer.testbed import RtspServer

        wanted = 1 if self.args.servers == "shared" else n
        while len(self.servers) < wanted:
            self.servers.append(RtspServer(self.args.video, fps=self.args.source_fps, replay=True).start())
        if self.args.servers == "shared":
            return [self.servers[0].url] * n
        return [s.url for s in self.servers[:n]]

    def stop_servers(self) -> None:
        for s in self.servers:
            try:
                s.stop()
            except Exception as e:
                print(f"warning: stopping an RTSP server: {e}", file=sys.stderr)
        self.servers = []

    def wait_running(self, ids: list[str], timeout_s: float) -> dict:
        deadline, statuses = time.monotonic() + timeout_s, {}
        while time.monotonic() < deadline:
            statuses = {s["id"]: s for s in self.client.streams() if s["id"] in ids}
            if any(s["state"] not in (StreamState.CONNECTING, StreamState.RUNNING) for s in statuses.values()):
                return statuses
            if len(statuses) == len(ids) and all(s["state"] == StreamState.RUNNING and s["frames"] > 0
                                                 for s in statuses.values()):
                return statuses
            time.sleep(0.5)
        return statuses

    def stop_streams(self, ids: list[str]) -> None:
        def stop(sid: str) -> None:
            try:
                self.client.stop(sid)
            except Exception as e:
                print(f"warning: DELETE /streams/{sid}: {e}", file=sys.stderr)

        with ThreadPoolExecutor(max(1, len(ids))) as pool:
            list(pool.map(stop, ids))

    def run_n(self, n: int) -> dict:
        a = self.args
        urls = self.rtsp_urls(n)
        source_fps = float(self.servers[0].fps)
        target = min(source_fps, a.fps) if a.fps else source_fps
        ids: list[str] = []
        started = time.monotonic()
        beside = FileBeside(self.client, a.file_beside, f"{a.tag}-n{n}").start() if a.file_beside else None
        try:
            for i, url in enumerate(urls):
                created = self.client.submit(url, name=f"live-{a.tag}-n{n}-s{i}", fps=a.fps)
                ids.append(created["id"])
            statuses = self.wait_running(ids, a.start_timeout)
            not_running = {sid: s.get("state") for sid, s in statuses.items() if s.get("state") != StreamState.RUNNING}
            missing = [sid for sid in ids if sid not in statuses]
            if not_running or missing:
                errors = {sid: statuses[sid].get("last_error") for sid in not_running}
                return {"n": n, "error": f"streams not running after {a.start_timeout:.0f} s: "
                                         f"{not_running or missing} {errors}", "clear_fail": True,
                        "all_realtime": False}
            startup_s = time.monotonic() - started
            self._sleep(a.warmup, ids)
            file_frames = beside.frames() if beside else 0
            first = snapshot(self.client, ids, self.cpu)
            self._sleep(a.seconds, ids)
            last = snapshot(self.client, ids, self.cpu)
            result = measure_window(first, last, ids, target, source_fps, a.fps)
            result["startup_s"] = startup_s
            if beside:
                result["file_fps"] = (beside.frames() - file_frames) / result["window_s"]
            return result
        except RuntimeError as e:  # a refused submit (ApiClientError), a stream that failed
            return {"n": n, "error": str(e), "clear_fail": True, "all_realtime": False}
        finally:
            if beside:
                beside.stop()
            if ids:
                self.stop_streams(ids)

    def _sleep(self, seconds: float, ids: list[str]) -> None:
        """Sleep, checking every few seconds that no stream has ended or failed."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(5.0, left))
            if time.monotonic() < end:
                bad = [s for s in self.client.streams() if s["id"] in ids and s["state"] != StreamState.RUNNING]
                if bad:
                    raise RuntimeError(f"stream {bad[0]['id']} is {bad[0]['state']}: {bad[0].get('last_error')}")


# ----------------------------------------------------------------------------- output

# ----------------------------------------------------------------------------- main

def _parse_args() -> argparse.Namespace:
    from streamer.config import DetectionPhasing, Priority

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=str(DEFAULT_VIDEO),
                        help="clip each RTSP server loops (default: %(default)s)")
    parser.add_argument("--max-streams", type=int, default=6)
    parser.add_argument("--min-streams", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per N")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds between all running and the window")
    parser.add_argument("--start-timeout", type=float, default=90.0, help="for the N streams to be running")
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument("--fps", type=float, default=None, help="ask the service for this rate per stream (API fps)")
    rate.add_argument("--source-fps", type=float, default=None, help="RTSP server sends this rate (camera at F fps)")
    parser.add_argument("--servers", choices=("shared", "per-stream"), default="shared")
    parser.add_argument("--config", default=None, help="a ray_config.yaml (default: ./ray_config.yaml if present)")
    parser.add_argument("--file-beside", default=None, help="keep a file stream of this clip running beside the N")
    parser.add_argument("--priority", choices=[str(p) for p in Priority], default=None,
                        help="model.priority: whose waiting calls the replicas serve first (default: the config's)")
    parser.add_argument("--every-frames", type=int, default=None,
                        help="detector.every_frames (default: the config's)")
    parser.add_argument("--detector-phase", choices=[str(p) for p in DetectionPhasing], default=None,
                        help="detector.phase: auto spreads the streams' scheduled detector runs over the "
                             "frames, off lets each count from its own last run (default: the config's)")
    parser.add_argument("--detector-replicas", type=int, default=None)
    parser.add_argument("--regressor-replicas", type=int, default=None)
    parser.add_argument("--num-gpus-per-replica", type=float, default=None,
                        help="for the regressor replicas (default with a CUDA GPU: 1, or the GPUs shared "
                             "among the replicas; without: the config's)")
    parser.add_argument("--worker-niceness", type=int, default=0,
                        help="nice value of Ray's worker processes (model replicas, sessions, Serve); Ray's "
                             "own default is 15, below any nice 0-14 job sharing the machine (default: %(default)s)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    if not Path(args.video).is_file():
        parser.error(f"--video {args.video}: no such file")
    if args.min_streams < 1 or args.max_streams < args.min_streams:
        parser.error("need 1 <= --min-streams <= --max-streams")
    args.tag = secrets.token_hex(2)
    args.video = str(Path(args.video).resolve())
    args.json = str(Path(args.json).resolve()) if args.json else None
    args.config = str(Path(args.config).resolve()) if args.config else None
    args.file_beside = str(Path(args.file_beside).resolve()) if args.file_beside else None
    return args


def _detector_overrides(args: argparse.Namespace) -> dict:
    """The ``detector`` section the flags set (every_frames, phase)."""
    detector: dict = {}
    if args.every_frames:
        detector["every_frames"] = args.every_frames
    if args.detector_phase:
        detector["phase"] = args.detector_phase
    return detector


def _model_overrides(args: argparse.Namespace, info: dict) -> dict:
    """The ``model`` section the flags set (replicas, priority, GPUs per regressor replica)."""
    model: dict = {}
    if args.detector_replicas:
        model["detector_replicas"] = args.detector_replicas
    if args.regressor_replicas:
        model["regressor_replicas"] = args.regressor_replicas
    if args.priority:
        model["priority"] = args.priority
    gpus = args.num_gpus_per_replica
    if gpus is None and info["gpu"]:
        import torch

        from streamer.config import load_config

        replicas = args.regressor_replicas or load_config(args.config).model.regressor_replicas
        gpus = min(1.0, torch.cuda.device_count() / max(1, replicas))  # every replica must fit
    if gpus is not None:
        model["num_gpus_per_replica"] = gpus
    return model


def main() -> int:
    args = _parse_args()
    # The service reads ./ray_config.yaml, and Ray's workers import the package from the
    # driver's working directory first: both must be this checkout.
    os.chdir(REPO)

    # Read by the raylet of the private Ray the service starts: its workers' nice value.
    os.environ["RAY_worker_niceness"] = str(args.worker_niceness)

    def on_term(*_):
        raise Interrupted()
    signal.signal(signal.SIGTERM, on_term)

    info = machine()
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), GPU: {info['gpu'] or 'none'}, "
          f"load average {info['loadavg']}, commit {info['commit']}")
    model = _model_overrides(args, info)

    from streamer.service.app import TOKEN_ENV

    results: list[dict] = []
    service = bench = None
    with tempfile.TemporaryDirectory(prefix="facestream-live-bench-") as tmp:
        token = os.environ.get(TOKEN_ENV) or secrets.token_hex(16)
        token_file = Path(tmp) / "token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        port = free_port()
        overrides = {
            "parquet": {"out": str(Path(tmp) / "out")},
            "service": {"port": port, "api_token_file": str(token_file),
                        "max_streams": max(16, args.max_streams)},
            **({"model": model} if model else {}),
            **({"detector": _detector_overrides(args)} if _detector_overrides(args) else {}),
            **({"media_root": str(Path(args.file_beside).resolve().parent)} if args.file_beside else {}),
        }
        try:
            service = Service(overrides, args.config)
            t0 = time.monotonic()
            health = service.start()
            # Ray's core installs its own SIGTERM handler when it starts (it dumps a stack and
            # exits on the spot, skipping the shutdown below): take SIGTERM back.
            signal.signal(signal.SIGTERM, on_term)
            print(f"service ready in {time.monotonic() - t0:.0f} s at {health['url']} "
                  f"(model {health.get('model_version')}; detector replicas {service.cfg.model.detector_replicas}, "
                  f"regressor replicas {service.cfg.model.regressor_replicas}, max_batch_size "
                  f"{service.cfg.model.max_batch_size}, queue_frames {service.cfg.source.queue_frames}, "
                  f"staleness_s {service.cfg.source.staleness_s}, detector every_frames "
                  f"{service.cfg.detector.every_frames} phase {service.cfg.detector.phase})")
            client = MetricsClient(health["url"], token=token, timeout_s=120.0)
            bench = Bench(args, client, CpuMeter())
            print(f"video {args.video}, RTSP servers: {args.servers}, Ray worker niceness {args.worker_niceness}"
                  + (f", API fps {args.fps:g}" if args.fps else "")
                  + (f", source fps {args.source_fps:g}" if args.source_fps else ""))
            fails_in_a_row = 0
            for n in range(args.min_streams, args.max_streams + 1):
                r = bench.run_n(n)
                results.append(r)
                print_n(r)
                fails_in_a_row = 0 if r["all_realtime"] else fails_in_a_row + 1
                if r.get("clear_fail") or fails_in_a_row >= 2:
                    print(f"stopping after N={n}: it {'clearly ' if r.get('clear_fail') else ''}fails")
                    break
                time.sleep(2.0)
        except (KeyboardInterrupt, Interrupted):
            print("\ninterrupted: shutting down", file=sys.stderr)
        finally:
            if service is not None:
                service.close()
            if bench is not None:
                bench.stop_servers()

    if not results:
        return 1
    target = next((r["target_fps"] for r in results if "target_fps" in r), args.fps or 0)
    best, text = conclusion(results, target)
    print("\n" + summary_table(results))
    print("\n" + text)
    if args.json:
        out = {"machine": info, "args": {k: v for k, v in vars(args).items() if k != "tag"},
               "overrides": {k: v for k, v in overrides.items() if k != "service"},
               "realtime_rule": {"fps_ratio": REALTIME_FPS_RATIO, "max_drop": REALTIME_MAX_DROP},
               "results": results, "answer": best, "conclusion": text,
               "loadavg_end": [round(x, 2) for x in os.getloadavg()]}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
