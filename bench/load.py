"""Load: many live streams plus a burst of concurrent API calls; memory and queues stay bounded.

    .venv/bin/python bench/load.py [--streams 8] [--max-streams 6] [--calls 50] [--seconds 40]
                                   [--video CLIP.mp4] [--plot docs/img/load.png] [--json out.json]

Starts the real service (as ``bench/live_streams.py`` does: private Ray, Serve API on a free
port, embedded Redis, shipped checkpoint) with ``service.max_streams`` below ``--streams``,
plays ``--video`` from one RTSP server, then:

1. submits ``--streams`` streams at once: those beyond the limit must be refused with 429
   and a reason, the others accepted with 201;
2. while they run, fires ``--calls`` API calls at once from as many threads (lists,
   status, metrics, malformed bodies, submissions over the limit) and counts the answers:
   every one must be 2xx or a 4xx that names its reason, none a 5xx, an error or a timeout;
3. samples, every 0.5 s for ``--seconds``: the resident memory of this process tree (the
   service and everything Ray started for it) and the queues — crops waiting at the
   regressor replica (``/metrics``) and frames dropped by the live sources' bounded
   buffers. Bounded means the second half of the window peaks no higher than the first
   half plus a small margin, while the streams keep running.

Prints a table, optionally writes a plot (memory and queue over time) and JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from live_service import MetricsClient, Service, free_port, metric_sum, parse_metrics  # noqa: E402

from streamer.pipeline.status import StreamState  # noqa: E402


def _rss_mb() -> float:
    """Resident memory of this process and all its descendants, in MB."""
    import psutil

    me = psutil.Process()
    total = 0
    for p in [me, *me.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def _call(base: str, method: str, path: str, body: bytes | None) -> tuple[int, str]:
    req = urllib.request.Request(base + path, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, ""
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read())["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return e.code, "no JSON error body"
    except Exception as e:
        return 0, type(e).__name__


def _burst(base: str, ids: list[str], video_url: str, calls: int) -> dict:
    kinds = [("GET", "/streams", None), ("GET", f"/streams/{ids[0]}", None), ("GET", "/metrics", None),
             ("GET", "/healthz", None), ("POST", "/streams", b'{"url": 5}'),
             ("POST", "/streams", json.dumps({"url": video_url}).encode())]
    plan = [kinds[i % len(kinds)] for i in range(calls)]
    with ThreadPoolExecutor(calls) as pool:
        answers = list(pool.map(lambda c: _call(base, *c), plan))
    tally: dict[str, int] = {}
    for status, code in answers:
        key = f"{status} {code}".strip()
        tally[key] = tally.get(key, 0) + 1
    failures = sum(n for k, n in tally.items() if k.startswith(("0", "5")) or "no JSON" in k)
    return {"answers": tally, "failures": failures}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--max-streams", type=int, default=6)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--video", default=str(REPO.parent / "shared/data/real/video/lp_d3.mp4"))
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from streamer.testbed import RtspServer

    tmp = Path(tempfile.mkdtemp(prefix="facestream-load-"))
    port = free_port()
    overrides = {"parquet": {"out": str(tmp / "out")}, "media_root": str(tmp),
                 "service": {"port": port, "max_streams": args.max_streams}}
    service = Service(overrides, str(REPO / "ray_config.yaml"))
    rtsp = RtspServer(args.video).start()
    result: dict = {"streams": args.streams, "max_streams": args.max_streams, "calls": args.calls}
    try:
        info = service.start()
        base = info["url"]
        client = MetricsClient(base)
        with ThreadPoolExecutor(args.streams) as pool:
            submitted = list(pool.map(lambda _: _call_submit(client, rtsp.url), range(args.streams)))
        ids = [s for s in submitted if not s.startswith("!")]
        result["submitted"] = {"accepted": len(ids), "refused": [s[1:] for s in submitted if s.startswith("!")]}
        deadline = time.monotonic() + 120
        while not all(client.stream(i)["state"] == StreamState.RUNNING for i in ids):
            if time.monotonic() > deadline:
                raise RuntimeError("streams did not all start within 120 s")
            time.sleep(0.5)
        samples, stop = [], threading.Event()

        def sample() -> None:
            t0 = time.monotonic()
            while not stop.is_set():
                m = parse_metrics(client.metrics())
                samples.append({"t": time.monotonic() - t0, "rss_mb": _rss_mb(),
                                "regressor_queue": metric_sum(m, "facestream_regressor_queue_crops"),
                                "dropped": metric_sum(m, "facestream_stream_dropped_frames_total"),
                                "frames": metric_sum(m, "facestream_stream_frames_total")})
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        time.sleep(args.seconds / 2)
        result["burst"] = _burst(base, ids, rtsp.url, args.calls)
        time.sleep(args.seconds / 2)
        stop.set()
        sampler.join(10)
        statuses = [client.stream(i) for i in ids]
        for i in ids:
            client.stop(i)
        result.update(_summarise(samples, statuses))
    finally:
        rtsp.stop()
        service.close()
    _print(result)
    if args.plot:
        _plot(result["samples"], args.plot)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    ok = (result["burst"]["failures"] == 0 and result["memory_bounded"]
          and len(result["submitted"]["refused"]) == max(0, args.streams - args.max_streams))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def _call_submit(client, url: str) -> str:
    from streamer.service.client import ApiClientError

    try:
        return client.submit(url)["id"]
    except ApiClientError as e:
        return f"!{e.status} {e.code}"


def _summarise(samples: list[dict], statuses: list[dict]) -> dict:
    half = len(samples) // 2
    first = max(s["rss_mb"] for s in samples[:half])
    second = max(s["rss_mb"] for s in samples[half:])
    return {
        "samples": samples,
        "rss_peak_mb": max(s["rss_mb"] for s in samples),
        "rss_first_half_peak_mb": first, "rss_second_half_peak_mb": second,
        "memory_bounded": second <= first * 1.05 + 50,
        "regressor_queue_peak_crops": max(s["regressor_queue"] for s in samples),
        "frames_in_window": samples[-1]["frames"] - samples[0]["frames"],
        "dropped_in_window": samples[-1]["dropped"] - samples[0]["dropped"],
        "window_s": samples[-1]["t"] - samples[0]["t"],
        "per_stream": [{k: s.get(k) for k in ("id", "state", "frames", "dropped_frames", "processed_fps",
                                             "latency_p50_s", "latency_p99_s")} for s in statuses],
    }


def _print(r: dict) -> None:
    print(f"streams submitted {r['streams']} (limit {r['max_streams']}): accepted "
          f"{r['submitted']['accepted']}, refused {r['submitted']['refused']}")
    print(f"{r['calls']} concurrent API calls: {r['burst']['answers']}  failures {r['burst']['failures']}")
    print(f"memory (service process tree): peak {r['rss_peak_mb']:.0f} MB; first half {r['rss_first_half_peak_mb']:.0f}"
          f" MB, second half {r['rss_second_half_peak_mb']:.0f} MB -> bounded: {r['memory_bounded']}")
    print(f"regressor queue peak {r['regressor_queue_peak_crops']:.0f} crops; in {r['window_s']:.0f} s: "
          f"{r['frames_in_window']:.0f} frames processed, {r['dropped_in_window']:.0f} dropped (oldest first)")
    for s in r["per_stream"]:
        p50 = f"{s['latency_p50_s'] * 1000:.0f}" if s["latency_p50_s"] is not None else "-"
        p99 = f"{s['latency_p99_s'] * 1000:.0f}" if s["latency_p99_s"] is not None else "-"
        print(f"  {s['id']:<22} {s['state']:<8} frames {s['frames']:>6} dropped {s['dropped_frames']:>6} "
              f"{s['processed_fps']:5.1f} fps  latency p50 {p50} ms p99 {p99} ms")


def _plot(samples: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] for s in samples]
    fig, (a, b) = plt.subplots(2, 1, figsize=(7, 4.5), sharex=True)
    a.plot(t, [s["rss_mb"] for s in samples])
    a.set_ylabel("RSS, MB")
    a.set_ylim(bottom=0)
    a.set_title("service under load: memory and queue")
    b.plot(t, [s["regressor_queue"] for s in samples], label="crops queued at regressor")
    b.set_ylabel("crops")
    b.set_xlabel("seconds")
    b.legend(loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    sys.exit(main())
