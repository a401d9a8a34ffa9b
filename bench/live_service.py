"""The real service in this process, for the benchmarks that drive it over HTTP
(bench/live_streams.py, bench/load.py), and what they read back: Prometheus samples and
histograms from ``GET /metrics``, and CPU seconds of this process tree and the machine.
"""
from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamer.service.client import ApiClient  # noqa: E402 (standard library only)

# ----------------------------------------------------------------------------- set-up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MetricsClient(ApiClient):
    """ApiClient plus ``GET /metrics`` (Prometheus text, not JSON)."""

    def metrics(self) -> str:
        req = urllib.request.Request(self.server + "/metrics")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
            return r.read().decode()


class Service:
    """The real service in a background thread of this process; ``close`` stops it."""

    def __init__(self, overrides: dict, config_path: str | None):
        from streamer.config import load_config

        self.overrides = overrides
        self.cfg = load_config(config_path, overrides)
        self.stop_event = threading.Event()
        self._ready = threading.Event()
        self._box: dict = {}
        self._thread = threading.Thread(target=self._run, args=(config_path,), name="facestream-serve",
                                        daemon=True)

    def _run(self, config_path: str | None) -> None:
        from streamer.service.server import serve_forever

        try:
            self._box["final"] = serve_forever(
                self.cfg, config_path=config_path, overrides=self.overrides, stop=self.stop_event,
                on_ready=lambda info: (self._box.update(info=info), self._ready.set()))
        except BaseException as e:
            self._box["error"] = e
        finally:
            self._ready.set()

    def start(self, timeout_s: float = 300.0) -> dict:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.5):  # short waits: Ctrl-C stays responsive
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service did not become ready in {timeout_s:.0f} s")
        if "error" in self._box:
            raise RuntimeError(f"the service failed to start: {self._box['error']}") from self._box["error"]
        if "info" not in self._box:
            raise RuntimeError("the service ended before it was ready")
        return self._box["info"]

    def close(self, timeout_s: float = 120.0) -> None:
        """Stop every stream (flushing sinks), then Serve and Ray; waits for the thread."""
        self.stop_event.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            print(f"warning: the service thread did not end within {timeout_s:.0f} s", file=sys.stderr)
        elif "error" in self._box and "info" in self._box:
            print(f"warning: the service ended with {type(self._box['error']).__name__}: {self._box['error']}",
                  file=sys.stderr)


# ----------------------------------------------------------------------------- measuring

_SAMPLE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, tuple], float]:
    """Prometheus text -> {(name, sorted label pairs): value}."""
    out = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            out[(m.group(1), tuple(sorted(_LABEL.findall(m.group(2) or ""))))] = float(m.group(3))
    return out


def metric_sum(metrics: dict, name: str, **labels) -> float:
    """Sum of every sample of ``name`` whose labels include ``labels``."""
    want = set((k, str(v)) for k, v in labels.items())
    return sum(v for (n, ls), v in metrics.items() if n == name and want <= set(ls))


def histogram_delta(before: dict, after: dict, name: str, **labels) -> list[tuple[float, float]]:
    """[(le, count in the window)] of a cumulative histogram, le = inf for +Inf."""
    buckets: dict[float, float] = {}
    for snap, sign in ((after, 1), (before, -1)):
        for (n, ls), v in snap.items():
            d = dict(ls)
            if n != f"{name}_bucket" or any(d.get(k) != str(x) for k, x in labels.items()):
                continue
            le = float("inf") if d["le"] == "+Inf" else float(d["le"])
            buckets[le] = buckets.get(le, 0.0) + sign * v
    return sorted(buckets.items())


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Linear interpolation inside the bucket holding the q-quantile (as Prometheus does)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lower  # beyond the last finite bound: only a lower bound is known
            return lower + (le - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = le, count
    return lower


def share_above(buckets: list[tuple[float, float]], bound: float) -> float | None:
    """Fraction of the observations above ``bound`` (a bucket bound: exact)."""
    total = buckets[-1][1] if buckets else 0.0
    at = dict(buckets).get(bound)
    return None if not total or at is None else 1.0 - at / total


def add_histograms(parts: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    total: dict[float, float] = {}
    for part in parts:
        for le, count in part:
            total[le] = total.get(le, 0.0) + count
    return sorted(total.items())


class CpuMeter:
    """CPU seconds of this process tree, of this process alone, and of the whole machine."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._me = psutil.Process()

    def snapshot(self) -> dict:
        ps = self._psutil
        tree = {}
        for p in [self._me, *self._me.children(recursive=True)]:
            try:
                t = p.cpu_times()
                tree[p.pid] = t.user + t.system
            except (ps.NoSuchProcess, ps.AccessDenied):
                pass
        t = self._me.cpu_times()
        machine_busy = niced = None
        try:  # cpu  user nice system idle iowait irq softirq steal ...
            fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            tick = os.sysconf("SC_CLK_TCK")
            machine_busy = (sum(fields[:8]) - fields[3] - fields[4]) / tick
            niced = fields[1] / tick
        except (OSError, ValueError, IndexError):
            pass
        return {"t": time.monotonic(), "tree": tree, "self": t.user + t.system, "machine": machine_busy,
                "niced": niced}

    @staticmethod
    def cores(a: dict, b: dict) -> dict:
        dt = b["t"] - a["t"]
        tree = sum(v - a["tree"].get(pid, 0.0) for pid, v in b["tree"].items())
        out = {"tree_cores": tree / dt, "harness_cores": (b["self"] - a["self"]) / dt}
        if a["machine"] is not None and b["machine"] is not None:
            out["machine_cores"] = (b["machine"] - a["machine"]) / dt
            out["other_cores"] = max(0.0, out["machine_cores"] - out["tree_cores"])
            # user time of processes with nice > 0 (background jobs; Ray workers too if niced)
            out["niced_cores"] = (b["niced"] - a["niced"]) / dt
        return out
