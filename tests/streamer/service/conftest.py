"""A running facestream service for the API tests: real Ray Serve on a free port, real
HTTP, the manager's own embedded Redis, files under a media root, the tiny checkpoint."""
from __future__ import annotations

import json
import random
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

TOKEN = "test-token-5b1f"


def _ephemeral_low() -> int:
    """The first port the kernel hands to outgoing connections (Linux: 32768 unless set)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port free on 127.0.0.1 now, and the next one too (the live view's, the API's + 1).

    Chosen below the kernel's range for outgoing connections: Ray holds hundreds of loopback
    connections, and a port from that range, free when a test picks it, can be a new
    connection's local port by the time a restarted service binds it again."""
    rng = random.SystemRandom()
    high = _ephemeral_low() - 2
    for _ in range(200):
        port = rng.randrange(max(1024, high - 10000), high)
        if _bindable(port) and _bindable(port + 1):
            return port
    with socket.socket() as s:   # a crowded machine: whatever the kernel gives
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    return free_port()


@pytest.fixture
def token() -> str:
    return TOKEN


@dataclass
class Service:
    base: str
    media_root: Path
    out: Path
    health: dict

    def request(self, method: str, path: str, body=None, token: str | None = TOKEN,
                raw: bytes | None = None, headers: dict | None = None) -> tuple[int, object]:
        """(status, parsed JSON or text) of one real HTTP request."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, text, ctype = r.status, r.read().decode(), r.headers.get("content-type", "")
        except urllib.error.HTTPError as e:
            status, text, ctype = e.code, e.read().decode(), e.headers.get("content-type", "")
        return status, (json.loads(text) if "json" in ctype else text)

    def wait(self, stream_id: str, until, timeout_s: float = 120.0, what: str = "") -> dict:
        """Poll GET /streams/{id} until ``until(status)``; fails with the last status."""
        deadline, status = time.monotonic() + timeout_s, None
        while time.monotonic() < deadline:
            code, status = self.request("GET", f"/streams/{stream_id}")
            assert code == 200, status
            if until(status):
                return status
            time.sleep(0.25)
        raise AssertionError(f"stream {stream_id} never reached {what or until}: {status}")


@pytest.fixture(scope="package")
def service(ray_runtime, tiny_checkpoint, face_video, two_face_video, tmp_path_factory):
    from streamer.config import load_config
    from streamer.service.server import serve_forever

    root = tmp_path_factory.mktemp("service")
    media, out = root / "media", root / "out"
    media.mkdir()
    for video in (face_video, two_face_video):
        shutil.copy(video.path, media / video.path.name)
    token_file = root / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    overrides = {
        "media_root": str(media),
        "model": {"checkpoint": str(tiny_checkpoint), "num_cpus_per_replica": 0.5, "max_wait_ms": 20.0},
        "parquet": {"out": str(out)},
        "session": {"progress_every_s": 0.2},
        "source": {"reconnect_s": 0.2, "reconnect_max_s": 1.0, "give_up_s": 20.0},
        "service": {"port": port, "max_streams": 4, "api_token_file": str(token_file), "stop_timeout_s": 20.0},
    }
    cfg = load_config(overrides=overrides)
    ready, stop, box = threading.Event(), threading.Event(), {}

    def run():
        try:
            box["final"] = serve_forever(cfg, overrides=overrides, stop=stop,
                                         on_ready=lambda info: (box.update(info=info), ready.set()))
        except BaseException as e:  # surfaced by the fixture below
            box["error"] = e
            ready.set()

    thread = threading.Thread(target=run, name="facestream-serve", daemon=True)
    thread.start()
    assert ready.wait(240), "service did not start in 240 s"
    if "error" in box:
        raise box["error"]
    yield Service(box["info"]["url"], media, out, box["info"])
    stop.set()
    thread.join(120)
    assert not thread.is_alive(), "service did not shut down"
    if "error" in box:
        raise box["error"]
