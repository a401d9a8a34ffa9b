"""What the Ray calls to the regressor cost, one per request against shared calls, in one run.

    .venv/bin/python bench/ray_call_cost.py [--callers 4] [--fps 30] [--seconds 10] [--rounds 2]

``--callers`` simulated cameras in this process (one event loop, as a stream host runs its
sessions) each send one face crop (one view, as a camera's) to one real
``RegressorReplica`` (the shipped checkpoint, one core) ``--fps`` times a second, all on
the same clock (frame-synchronous cameras), for ``--seconds``; twice per round:

- ``per request``: each request its own Ray call (``actor.predict.remote``), as sessions
  called before ``streamer.pipeline.call_groups``;
- ``grouped``: through ``call_groups.group_for(actor)``, as ``Replicas.predict`` now does:
  a request made while another call is out waits for it and goes with the others.

Printed per mode: the CPU of this process and of the replica's (cores, from
``/proc/PID/stat``), CPU per request (ms), Ray calls per request, and the request latency
p50 / p99 (submit to answer); then grouped / per-request for the CPU. First, the bare cost
of an empty call (an actor method that returns at once), for scale. CPU is counted, not
wall time, so a busy machine shifts both modes alike; rounds alternate the order.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import ray  # noqa: E402

from bench.machine import machine  # noqa: E402
from streamer.pipeline import runtime  # noqa: E402
from streamer.pipeline.call_groups import CropRequest, group_for  # noqa: E402
from streamer.pipeline.replicas import RegressorReplica  # noqa: E402
from workers import checkpoint  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


@ray.remote(num_cpus=0)
class Echo:
    """An actor whose method does nothing: what a call costs by itself."""

    def pid(self) -> int:
        return os.getpid()

    async def call(self, x: np.ndarray) -> int:
        return len(x)


async def _empty_calls(actor, n: int) -> None:
    for _ in range(n):
        await actor.call.remote(np.zeros((1, 120, 120, 3), np.uint8))


def empty_call_cost(n: int = 1000) -> tuple[float, float]:
    """(caller, actor) CPU ms per empty call."""
    actor = Echo.remote()
    pid = ray.get(actor.pid.remote())
    asyncio.run(_empty_calls(actor, 50))
    c0, a0 = cpu_s(os.getpid()), cpu_s(pid)
    asyncio.run(_empty_calls(actor, n))
    c1, a1 = cpu_s(os.getpid()), cpu_s(pid)
    ray.kill(actor)
    return 1e3 * (c1 - c0) / n, 1e3 * (a1 - a0) / n


async def cameras(actor, crop: np.ndarray, callers: int, fps: float, seconds: float, grouped: bool) -> list[float]:
    """Request latencies (s) of ``callers`` frame-synchronous cameras for ``seconds``."""
    latencies: list[float] = []
    pending: set[asyncio.Task] = set()

    async def one() -> None:
        t0 = time.perf_counter()
        if grouped:
            await group_for(actor, live=True).submit(CropRequest(crop, live=True))
        else:
            await actor.predict.remote(crop, True)
        latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    frame = 0
    while time.perf_counter() - start < seconds:
        for _ in range(callers):
            task = asyncio.ensure_future(one())
            pending.add(task)
            task.add_done_callback(pending.discard)
        frame += 1
        await asyncio.sleep(max(0.0, start + frame / fps - time.perf_counter()))
    await asyncio.gather(*pending)
    return latencies


def measure(actor, pid: int, crop: np.ndarray, args, grouped: bool) -> dict:
    asyncio.run(cameras(actor, crop, args.callers, args.fps, 1.0, grouped))   # warm
    calls0 = ray.get(actor.stats.remote()).get("calls", 0)
    c0, r0, t0 = cpu_s(os.getpid()), cpu_s(pid), time.perf_counter()
    lat = asyncio.run(cameras(actor, crop, args.callers, args.fps, args.seconds, grouped))
    c1, r1, t1 = cpu_s(os.getpid()), cpu_s(pid), time.perf_counter()
    stats = ray.get(actor.stats.remote())
    wall = t1 - t0
    return {"caller_cores": (c1 - c0) / wall, "replica_cores": (r1 - r0) / wall, "requests": len(lat),
            "cpu_ms_per_request": 1e3 * ((c1 - c0) + (r1 - r0)) / len(lat),
            "calls_per_request": (stats.get("calls", 0) - calls0) / len(lat) if grouped else 1.0,
            "p50_ms": 1e3 * float(np.percentile(lat, 50)), "p99_ms": 1e3 * float(np.percentile(lat, 99))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--callers", type=int, default=4)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    info = machine()
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), load average {info['loadavg']}, commit {info['commit']}")
    with runtime.start(num_cpus=2):
        caller_ms, actor_ms = empty_call_cost()
        print(f"an empty Ray call: {caller_ms:.2f} ms of the caller's CPU + {actor_ms:.2f} ms of the actor's")
        ckpt = str(checkpoint.default_path())
        actor = ray.remote(RegressorReplica).options(num_cpus=1).remote(ckpt, "cpu", 32, 10.0)
        ray.get(actor.info.remote())
        pid = ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))
        size = int(checkpoint.load_meta(ckpt)["crop"]["size"])
        crop = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), np.uint8)
        print(f"\n{args.callers} cameras at {args.fps:g} frames/s, one face each, "
              f"{args.seconds:g} s per mode and round")
        print("| round | mode | caller cores | replica cores | CPU ms / request | calls / request | p50 / p99 ms |")
        print("|---|---|---|---|---|---|---|")
        rows: dict[bool, list[dict]] = {False: [], True: []}
        for r in range(args.rounds):
            for grouped in ((False, True) if r % 2 == 0 else (True, False)):
                m = measure(actor, pid, crop, args, grouped)
                rows[grouped].append(m)
                print(f"| {r + 1} | {'grouped' if grouped else 'per request'} | {m['caller_cores']:.3f} | "
                      f"{m['replica_cores']:.3f} | {m['cpu_ms_per_request']:.2f} | {m['calls_per_request']:.2f} | "
                      f"{m['p50_ms']:.1f} / {m['p99_ms']:.1f} |", flush=True)
        ray.kill(actor)
    per = np.mean([m["cpu_ms_per_request"] for m in rows[False]])
    grp = np.mean([m["cpu_ms_per_request"] for m in rows[True]])
    print(f"\nCPU per request, grouped / per request: {grp:.2f} / {per:.2f} ms = {grp / per:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
