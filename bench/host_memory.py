"""What each added stream costs in memory: streams in one host process vs a process each.

    .venv/bin/python bench/host_memory.py [--video CLIP.mp4] [--streams 1,2,4,8]
                                          [--source-fps F] [--settle 8] [--seconds 8]
                                          [--kind live|file] [--json results.json]

Starts a private Ray cluster, an embedded Redis, the shipped checkpoint's detector and
regressor replicas and Parquet under a temporary directory (``streamer.pipeline.backend``, as the
service does), then measures, by reading ``/proc/PID`` of the processes that run streams:

1. *Before*: an idle Ray actor that imports what a session process imported before
   sessions became torch-free (the session through ``workers.regressor`` / ``workers.emotion``:
   torch, safetensors, the networks) — the floor of the old process per stream, before
   any frame — beside an idle one that imports what a session process imports now.
2. *Host*: for each N of ``--streams``, a fresh :class:`~streamer.service.host.StreamHost`
   with N streams; once every stream has published frames, ``--settle`` seconds pass and
   its RSS (and PSS, from ``smaps_rollup``) is sampled every 0.25 s for ``--seconds``;
   reported: the idle host, the host with N streams (median and max), and the
   increment per stream ``(RSS(N) - RSS(idle)) / N``.
3. *A process each*: N = the largest of ``--streams`` hosts of one stream each
   (``service.streams_per_host: 1``); the RSS of each.

``--kind live`` (default): each stream is an RTSP client of one
:class:`~streamer.testbed.RtspServer` playing ``--video`` in real time, looped (live
cameras; the streams never end); ``--kind file``: each stream reads ``--video`` as a file
(processed as fast as the replicas allow; a short clip may end before it is measured).
The replicas' processes hold the models once for all streams and are not counted.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "real" / "video" / "lp_s18.mp4"
MB = 1024 * 1024


def proc_memory(pid: int) -> dict:
    """RSS and PSS (bytes) of a process of this machine."""
    out = {"rss": 0, "pss": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                out[key.lower()] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


class ImportsOnly:
    """An idle actor that imports ``modules`` (to weigh what a process imports)."""

    def __init__(self, modules: list[str]):
        import importlib

        for m in modules:
            importlib.import_module(m)

    def pid(self) -> int:
        return os.getpid()


OLD_SESSION_IMPORTS = ["streamer.pipeline.session", "workers.regressor", "workers.emotion", "workers.checkpoint",
                       "workers.detector"]
NEW_SESSION_IMPORTS = ["streamer.pipeline.session"]


def idle_process(modules: list[str]) -> int:
    import ray

    actor = ray.remote(ImportsOnly).options(num_cpus=0).remote(modules)
    pid = ray.get(actor.pid.remote())
    time.sleep(1.0)
    mem = proc_memory(pid)["rss"]
    ray.kill(actor)
    return mem


def wait_running(hosted: list, min_frames: int, timeout_s: float) -> None:
    import ray

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        progress = ray.get([h.progress() for h in hosted])
        if all(p is not None and p.frames >= min_frames for p in progress):
            return
        time.sleep(0.5)
    raise SystemExit(f"streams did not reach {min_frames} frames in {timeout_s:.0f} s: {progress}")


def sample(pids: list[int], seconds: float) -> list[list[dict]]:
    """Memory of each pid every 0.25 s for ``seconds``: one list per pid."""
    series: list[list[dict]] = [[] for _ in pids]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for s, pid in zip(series, pids):
            s.append(proc_memory(pid))
        time.sleep(0.25)
    return series


def run_streams(backend, cfg, pool, url: str, n: int, tag: str, args) -> tuple[list, list]:
    """N streams placed by ``pool``; returns (hosted handles, run refs)."""
    hosted, runs = [], []
    for i in range(n):
        stream_id = f"{tag}-{i}"
        h = pool.place(stream_id)
        hosted.append(h)
        runs.append(h.run(url, cfg, backend.replicas, backend.sinks(cfg, stream_id, url, live=args.kind == "live"),
                            media_root="/"))
    wait_running(hosted, args.min_frames, args.timeout)
    return hosted, runs


def end_streams(hosted, runs) -> None:
    import ray

    ray.get([h.stop() for h in hosted])
    try:
        ray.get(runs, timeout=120)
    except Exception as e:   # a stream that failed says so; the memory figures still stand
        print(f"  (a stream ended with {type(e).__name__}: {e})", flush=True)
    for h in hosted:
        h.release()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", default=str(DEFAULT_VIDEO))
    ap.add_argument("--streams", default="1,2,4,8")
    ap.add_argument("--kind", choices=("live", "file"), default="live")
    ap.add_argument("--source-fps", type=float, default=None, help="RTSP pacing (default: the clip's rate)")
    ap.add_argument("--settle", type=float, default=8.0)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--min-frames", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=180.0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))

    import ray

    from streamer.config import load_config
    from streamer.pipeline import backend as backend_mod
    from streamer.pipeline import runtime
    from streamer.service.host import HostPool

    counts = [int(x) for x in args.streams.split(",")]
    out = Path(tempfile.mkdtemp(prefix="host-memory-"))
    cfg = load_config(overrides={"parquet": {"out": str(out)}, "source": {"local_networks": "allow"}})
    rt = runtime.start(num_cpus=2)
    server = None
    results: dict = {"video": args.video, "kind": args.kind, "cores": os.cpu_count(), "hosts": {}}
    try:
        backend = backend_mod.start(cfg, *backend_mod.check_services(cfg))
        if args.kind == "live":
            from streamer.testbed import RtspServer

            server = RtspServer(args.video, fps=args.source_fps, replay=True).start()
            url = server.url
        else:
            url = str(Path(args.video).resolve())

        old, new = idle_process(OLD_SESSION_IMPORTS), idle_process(NEW_SESSION_IMPORTS)
        results.update(idle_old_session_process_mb=old / MB, idle_new_session_process_mb=new / MB)
        print(f"idle process, a session's imports before item 4 (torch): {old / MB:7.1f} MB RSS", flush=True)
        print(f"idle process, a session's imports now:                  {new / MB:7.1f} MB RSS", flush=True)

        for n in counts:
            cfg.service.streams_per_host, cfg.service.hosts = n, 1   # all N in one host
            pool = HostPool(cfg)
            hosted, runs = run_streams(backend, cfg, pool, url, n, f"host{n}", args)
            pid = ray.get(hosted[0].host.info.remote())["pid"]
            time.sleep(args.settle)
            series = sample([pid], args.seconds)[0]
            rss = [s["rss"] for s in series]
            pss = [s["pss"] for s in series]
            end_streams(hosted, runs)
            results["hosts"][n] = {"rss_median": statistics.median(rss), "rss_max": max(rss),
                                   "pss_median": statistics.median(pss)}

        # the idle host: a host started and given nothing (imports done, no face model yet)
        cfg.service.streams_per_host = 1
        from streamer.service.host import launch_host

        idle = launch_host(cfg)
        idle_pid = ray.get(idle.info.remote())["pid"]
        time.sleep(1.0)
        idle_rss = proc_memory(idle_pid)["rss"]
        ray.kill(idle)
        results["idle_host_mb"] = idle_rss / MB
        print(f"idle host (no stream):                                 {idle_rss / MB:7.1f} MB RSS", flush=True)
        print(f"\n{'streams':>7} {'host RSS median':>16} {'max':>8} {'PSS':>8} {'per stream':>11}", flush=True)
        for n, r in results["hosts"].items():
            per = (r["rss_median"] - idle_rss) / n
            r["per_stream_mb"] = per / MB
            print(f"{n:7d} {r['rss_median'] / MB:13.1f} MB {r['rss_max'] / MB:5.0f} MB {r['pss_median'] / MB:5.0f} MB "
                  f"{per / MB:8.1f} MB", flush=True)
        ns = sorted(results["hosts"])
        if len(ns) > 1:
            lo, hi = results["hosts"][ns[0]], results["hosts"][ns[-1]]
            marginal = (hi["rss_median"] - lo["rss_median"]) / (ns[-1] - ns[0])
            results["marginal_per_stream_mb"] = marginal / MB
            print(f"marginal, {ns[0]} -> {ns[-1]} streams: {marginal / MB:.1f} MB a stream", flush=True)

        # a process each, as before (now without torch)
        n = max(counts)
        cfg.service.streams_per_host = 1
        pool = HostPool(cfg)
        hosted, runs = run_streams(backend, cfg, pool, url, n, "own", args)
        pids = [ray.get(h.host.info.remote())["pid"] for h in hosted]
        time.sleep(args.settle)
        each = [statistics.median(s["rss"] for s in series) for series in sample(pids, args.seconds)]
        end_streams(hosted, runs)
        results["process_each"] = {"streams": n, "rss_median_each_mb": [x / MB for x in each],
                                   "total_mb": sum(each) / MB}
        print(f"\n{n} streams, a process each: {statistics.median(each) / MB:.1f} MB each (median), "
              f"{sum(each) / MB:.0f} MB together; one host: {results['hosts'][n]['rss_median'] / MB:.0f} MB",
              flush=True)
    finally:
        if server is not None:
            server.stop()
        try:
            backend.stop()
        except Exception:
            pass
        rt.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
