"""The network policy against the real service: run only inside a network namespace that
holds loopback alone, by tests/streamer/service/test_network_policy.py (which sets up the
addresses on ``lo`` and the ``/etc/hosts`` these checks rely on).

The service runs as an exposed one would: listening on 0.0.0.0 (of the namespace) with
an API token, ``local_networks: auto`` (so loopback and private ranges are refused) and
the "LAN camera" subnet 10.99.0.0/24 in ``allow_networks``. Traps listen on every
address of the namespace at the ports the refused URLs name; a connection reaching one
would mean the policy failed.
"""
from __future__ import annotations

import ipaddress
import socket
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest

from testsupport import netns
from testsupport.denied_addresses import ALWAYS_DENIED, LOCAL, SECRET, forms
from testsupport.policy_servers import M3U8, Site, Trap, playlist

from .conftest import TOKEN, Service, free_port

pytestmark = pytest.mark.skipif(not netns.inside(), reason="runs only in a loopback-only network namespace "
                                                            "(tests/streamer/service/test_network_policy.py)")

CAMERA = "10.99.0.7"
TRAP_PORTS = (80, 443, 554, 322, 6379)
NAMES = ["http://localhost:6379/", "rtsp://metadata.test/stream", "http://metadata.test/latest/meta-data/",
         f"http://admin:{SECRET}@mixed.test/", "rtsps://metadata.test:443/stream"]


class DnsTrap:
    """A name server on 127.0.0.1:53 that answers nothing and writes down every name asked
    for; the namespace's /etc/resolv.conf names it (bound over the real one, in this
    private mount namespace), so a lookup that /etc/hosts does not answer lands here."""

    def __init__(self, resolv: Path) -> None:
        resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True, timeout=30)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 53))
        self.queries: list[str] = []
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        while True:
            try:
                packet, _ = self.sock.recvfrom(4096)
            except OSError:
                return
            labels, i = [], 12                   # the question's name follows the 12-byte header
            while i < len(packet) and packet[i]:
                labels.append(packet[i + 1:i + 1 + packet[i]].decode("latin-1"))
                i += 1 + packet[i]
            self.queries.append(".".join(labels))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="session")
def dns(tmp_path_factory):
    trap = DnsTrap(tmp_path_factory.mktemp("dns") / "resolv.conf")
    yield trap
    trap.close()


@pytest.fixture(scope="session")
def traps(dns):
    """Bound before Ray and the service start, on every address of the namespace (and the
    name server: Ray starts after both)."""
    made = [Trap("::", port) for port in TRAP_PORTS]
    yield made
    for trap in made:
        trap.close()


def listening() -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """(address, port) of every TCP socket listening in this network namespace, from the
    kernel's own tables (whoever holds them: here, this pytest and what it started)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state != "0A":        # TCP_LISTEN
                continue
            hexaddr, hexport = local.split(":")
            raw = bytes.fromhex(hexaddr)
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.append((ipaddress.ip_address(raw), int(hexport, 16)))
    return found


def on_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


@pytest.fixture(scope="module")
def exposed_service(traps, ray_runtime, tiny_checkpoint, face_video, tmp_path_factory):
    from streamer.config import load_config
    from streamer.service.server import serve_forever

    assert netns.only_loopback()
    root = tmp_path_factory.mktemp("exposed")
    (root / "media").mkdir()
    token_file = root / "token"
    token_file.write_text(TOKEN)
    overrides = {
        "media_root": str(root / "media"),
        "model": {"checkpoint": str(tiny_checkpoint), "num_cpus_per_replica": 0.5, "max_wait_ms": 20.0},
        "parquet": {"out": str(root / "out")},
        "session": {"progress_every_s": 0.2},
        "source": {"reconnect_s": 0.2, "reconnect_max_s": 1.0, "give_up_s": 20.0,
                   "allow_networks": ["10.99.0.0/24"]},
        "service": {"host": "0.0.0.0", "port": free_port(), "api_token_file": str(token_file)},
    }
    cfg = load_config(overrides=overrides)
    ready, stop, box = threading.Event(), threading.Event(), {}

    def run():
        try:
            serve_forever(cfg, overrides=overrides, stop=stop,
                          on_ready=lambda info: (box.update(info=info), ready.set()))
        except BaseException as e:
            box["error"] = e
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(300), "service did not start"
    if "error" in box:
        raise box["error"]
    yield Service(box["info"]["url"], root / "media", root / "out", box["info"])
    stop.set()
    thread.join(120)


def test_every_refused_form_is_a_400_before_anything_is_opened(exposed_service, traps):
    tried, refused = Counter(), Counter()
    groups = {**ALWAYS_DENIED, **LOCAL, "names resolving to refused addresses": NAMES}
    for group, url in forms(groups):
        code, body = exposed_service.request("POST", "/streams", {"url": url})
        tried[group] += 1
        assert code == 400 and body["error"]["code"] == "url_refused", (url, code, body)
        message = body["error"]["message"]
        assert SECRET not in message and "admin" not in message, message
        refused[group] += 1
    code, listed = exposed_service.request("GET", "/streams")
    assert code == 200 and listed == []                       # nothing was started
    assert [t.hits for t in traps] == [0] * len(traps), [t.seen for t in traps]   # and nothing connected
    for group in groups:
        print(f"FIGURE netpolicy | {group} | {tried[group]} | {refused[group]} |")
    print(f"FIGURE netpolicy | total | {sum(tried.values())} | {sum(refused.values())} | "
          f"connections reaching a trap: {sum(t.hits for t in traps)} (and {sum(t.ray_probes for t in traps)} "
          "from Ray's own cloud probe)")


def test_rtsp_over_udp_is_refused(exposed_service):
    code, body = exposed_service.request("POST", "/streams", {"url": f"rtsp://{CAMERA}:18554/stream",
                                                              "options": {"transport": "udp"}})
    assert code == 400 and body["error"]["code"] == "transport_refused"
    assert "source.rtsp_udp" in body["error"]["message"]


def test_an_allowed_camera_streams_by_name_and_by_address(exposed_service, face_video):
    from streamer.testbed import RtspServer

    with RtspServer(face_video.path, host=CAMERA, port=18554):
        for name, url in (("lan-cam", f"rtsp://{CAMERA}:18554/stream"),
                          ("lan-cam-name", "rtsp://camera.test:18554/stream")):
            code, created = exposed_service.request("POST", "/streams", {"url": url, "name": name})
            assert code == 201, created
            running = exposed_service.wait(name, lambda s: s["frames"] >= 10, timeout_s=90, what="10 frames")
            assert running["state"] == "running"
            assert exposed_service.request("DELETE", f"/streams/{name}")[1]["state"] == "stopped"
    print("FIGURE netpolicy live | an allowed LAN camera (10.99.0.0/24 in allow_networks) | streams, "
          "by address and by name")


def _fails(service: Service, name: str, url: str) -> dict:
    code, created = service.request("POST", "/streams", {"url": url, "name": name})
    assert code == 201, created           # the URL itself is allowed: what it leads to is not
    return service.wait(name, lambda s: s["state"] not in ("connecting", "running"), timeout_s=90, what="the end")


def test_a_redirect_and_an_hls_segment_to_refused_addresses_are_refused(exposed_service, traps, face_video):
    site = Site(CAMERA, 18080)
    site.routes["/cam"] = (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")
    site.routes["/cam-hex"] = (302, {"Location": "http://0xa9fea9fe/latest/meta-data/"}, b"")
    site.routes["/live.m3u8"] = (200, M3U8, playlist("http://[::ffff:100.100.100.200]/seg0.ts"))
    site.routes["/variant.m3u8"] = (200, M3U8, b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nhttp://127.0.0.1:6379/x.m3u8\n")
    try:
        cases = {"redirect": (site.url("/cam"), "the server redirected to http://169.254.169.254/latest/meta-data/: "
                                                "169.254.169.254 is a link-local address"),
                 "redirect-hex": (site.url("/cam-hex"), "host '0xa9fea9fe' is 169.254.169.254 written another way"),
                 "hls-segment": (site.url("/live.m3u8"), "the stream asked for http://[::ffff:100.100.100.200]/seg0.ts"),
                 "hls-variant": (site.url("/variant.m3u8"), "127.0.0.1 is a loopback address, which this service "
                                                            "refuses")}
        for name, (url, reason) in cases.items():
            done = _fails(exposed_service, name, url)
            assert done["state"] == "failed" and reason in done["last_error"], (name, done)
            print(f"FIGURE netpolicy live | {name} | failed: {done['last_error']}")
    finally:
        site.close()
    assert [t.hits for t in traps] == [0] * len(traps), [t.seen for t in traps]


def test_a_name_rebound_to_a_refused_address_is_refused_on_reconnect(exposed_service, face_video):
    import os

    from streamer.testbed import RtspServer

    hosts = Path(os.environ[netns.HOSTS_ENV])
    camera = RtspServer(face_video.path, host=CAMERA, port=18555).start()
    try:
        code, created = exposed_service.request("POST", "/streams", {"url": "rtsp://rebind.test:18555/stream",
                                                                      "name": "rebind"})
        assert code == 201, created
        exposed_service.wait("rebind", lambda s: s["frames"] >= 10, timeout_s=90, what="10 frames")
        # the name now answers with the metadata address (same file: the bind mount stays)
        hosts.write_text(hosts.read_text().replace(f"{CAMERA} rebind.test", "169.254.169.254 rebind.test"))
        trap = Trap("169.254.169.254", 18555)   # where a connection would land if it got through
        camera.stop()                           # the session reconnects, and looks the name up again
        try:
            done = exposed_service.wait("rebind", lambda s: s["state"] not in ("connecting", "running"),
                                        timeout_s=90, what="the end")
        finally:
            trap.close()
    finally:
        camera.stop()
    assert done["state"] == "failed", done
    assert "host 'rebind.test' resolves to 169.254.169.254, a link-local address" in done["last_error"]
    assert trap.hits == 0
    print(f"FIGURE netpolicy live | DNS rebinding after a reconnect | failed: {done['last_error']}")


def test_healthz_tells_probes_nothing_to_aim_at(exposed_service):
    code, open_view = exposed_service.request("GET", "/healthz", token=None)
    assert code == 200 and open_view["status"] == "ok"
    assert set(open_view) == {"status", "model_version", "accepts_files", "streams_active", "max_streams", "uptime_s"}
    assert not any(isinstance(v, str) and ("/" in v or ":" in v) for k, v in open_view.items()
                   if k != "model_version"), open_view
    code, full = exposed_service.request("GET", "/healthz")
    assert code == 200 and full["redis"].startswith("redis://127.0.0.1:") and full["local_networks"] == "deny"
    wrong = exposed_service.request("GET", "/healthz", token="nope")[1]
    assert set(wrong) == set(open_view)


def test_the_private_ray_listens_on_loopback_and_asks_nothing_beyond_it(exposed_service, traps, dns):
    """Runs last, when every process of the service has started (sessions, replicas, Serve
    and its replicas, the embedded Redis): nothing listens beyond loopback but the API and
    the traps, and Ray neither asked the metadata address which cloud it runs on nor
    looked up metadata.google.internal."""
    from urllib.parse import urlsplit

    # the API (on 0.0.0.0 as configured), the traps, and the cameras and traps of the tests
    # above (a listener closed while its thread waits in accept() stays until it returns)
    allowed = {urlsplit(exposed_service.base).port, *TRAP_PORTS, 18080, 18554, 18555}
    sockets = listening()
    beyond = sorted(f"{a}:{p}" for a, p in sockets if not on_loopback(a) and p not in allowed)
    assert len(sockets) >= 10 and beyond == [], beyond        # GCS, raylet, workers, agents, Serve
    assert [t.ray_probes for t in traps] == [0] * len(traps), [t.ray_probes for t in traps]
    assert [t.hits for t in traps] == [0] * len(traps), [t.seen for t in traps]
    assert dns.queries == [], dns.queries
    print(f"FIGURE private ray | listening sockets {len(sockets)}, beyond loopback: {len(beyond)} "
          f"(besides the API and the traps) | cloud probes {sum(t.ray_probes for t in traps)} | "
          f"DNS queries {len(dns.queries)}")
