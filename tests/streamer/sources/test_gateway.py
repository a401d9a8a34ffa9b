"""streamer.sources.gateway, with the HTTP fetcher (streamer.sources.http) and the RTSP relay
(streamer.sources.rtsp), through LiveSource, against real servers on loopback: connections go
to the address that was checked (never looked up again), on every reconnect; HTTP
redirects, HLS playlists and segments, and RTSP replies obey the policy.

The address a source must not reach is 127.0.0.2, refused with ``deny_networks``, where
a trap listens on the port the refused request names: a connection reaching it would
mean the policy failed, and nothing leaves the machine either way. Host names come from
a resolver in a dict (the ``.test`` names exist nowhere else), so a stream that plays
from ``camera.test`` was opened by connecting to the checked address: FFmpeg could not
have looked the name up.
"""
from __future__ import annotations

import ipaddress
import select
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import av
import pytest

from streamer.config import SourceConfig
from streamer.sources.frames import SourceError
from streamer.sources.gateway import Gateway, Route
from streamer.sources.live import LiveSource
from streamer.sources.netpolicy import NetworkPolicy, NetworkRefused
from streamer.sources.urls import SourceRefused, check_source
from streamer.testbed import HttpTsServer, RtspServer
from testsupport.bar_clip import N, bar_index, write_bar_clip
from testsupport.policy_servers import M3U8, TS, Site, Trap, playlist

DENIED = "127.0.0.2"
SECRET = "s3cret"


def config(**kw) -> SourceConfig:
    return SourceConfig(**{"queue_frames": 64, "reconnect_s": 0.2, "reconnect_max_s": 0.5, "give_up_s": 10.0,
                           "open_timeout_s": 3.0, "deny_networks": [f"{DENIED}/32"], **kw})


class Names:
    """A name service in a dict; ``answers[name]`` is a list of answers, one per lookup
    (the last repeats). Every lookup is recorded."""

    def __init__(self, **answers: list[list[str]]):
        self.answers = {name.replace("_", "."): list(a) for name, a in answers.items()}
        self.calls: list[str] = []

    def __call__(self, host: str, port: int):
        self.calls.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        queue = self.answers[host]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return [ipaddress.ip_address(a) for a in answer]


class TlsFront:
    """TLS on loopback in front of a plain server (rtsps://, https://); records the SNI
    each client sent."""

    def __init__(self, backend_port: int, cert: Path, key: Path):
        self.backend_port = backend_port
        self.sni: list[str | None] = []
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.context.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            client = self.context.wrap_socket(raw, server_side=True)
            backend = socket.create_connection(("127.0.0.1", self.backend_port))
            while True:   # one thread per connection: the TLS socket is never shared
                ready = [client] if client.pending() else select.select([client, backend], [], [], 1.0)[0]
                for sock in ready:
                    client.setblocking(sock is not client)   # no wait past a record without data
                    try:
                        data = sock.recv(65536)
                    except ssl.SSLWantReadError:
                        continue
                    finally:
                        client.setblocking(True)
                    if not data:
                        return
                    (backend if sock is client else client).sendall(data)
        except (OSError, ssl.SSLError):
            return

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_bar_clip(tmp_path_factory.mktemp("gateway") / "bar.mp4")


@pytest.fixture(scope="module")
def segments(clip, tmp_path_factory) -> dict[str, bytes]:
    """The clip as HLS: its playlist and segments, by file name."""
    out_dir = tmp_path_factory.mktemp("hls")
    with av.open(str(clip)) as source, av.open(str(out_dir / "index.m3u8"), "w", format="hls",
                                               options={"hls_time": "0.4", "hls_list_size": "0",
                                                        "hls_playlist_type": "vod"}) as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return {p.name: p.read_bytes() for p in out_dir.iterdir()}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a test certificate")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=camera.test"], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def trap():
    t = Trap(DENIED)
    yield t
    t.close()


def take(src: LiveSource, n: int) -> list:
    frames = iter(src)
    return [next(frames) for _ in range(n)]


# ---- connect to the checked address --------------------------------------------------------

@pytest.mark.parametrize("kind", ["rtsp", "http-ts", "hls"])
def test_a_name_is_looked_up_once_per_connection_and_the_checked_address_connected_to(clip, segments, kind):
    names = Names(camera_test=[["127.0.0.1"]])
    site = Site()
    server = (RtspServer if kind == "rtsp" else HttpTsServer)(clip).start()
    try:
        site.routes.update({f"/{n}": (200, M3U8 if n.endswith("m3u8") else TS, b) for n, b in segments.items()})
        url = {"rtsp": f"rtsp://camera.test:{server.port}/stream",
               "http-ts": f"http://camera.test:{server.port}/stream.ts",
               "hls": f"http://camera.test:{site.port}/index.m3u8"}[kind]
        with LiveSource(check_source(url, None), config(), resolve=names) as src:
            frames = take(src, 20)
    finally:
        server.stop()
        site.close()
    assert all(0 <= bar_index(f.image) < N for f in frames)
    # one lookup for each connection: the playlist and each segment fetched, for HLS
    connections = {"rtsp": 1, "http-ts": 1, "hls": len(site.seen)}[kind]
    assert names.calls == ["camera.test"] * connections


@pytest.mark.parametrize("kind", ["rtsps", "https"])
def test_tls_sources_connect_to_the_checked_address_with_the_name_as_sni(clip, certificate, kind):
    names = Names(camera_test=[["127.0.0.1"]])
    server = (RtspServer if kind == "rtsps" else HttpTsServer)(clip).start()
    front = TlsFront(server.port, *certificate)
    try:
        url = f"{kind}://camera.test:{front.port}{server.path}"
        with LiveSource(check_source(url, None), config(), resolve=names) as src:
            frames = take(src, 10)
    finally:
        front.close()
        server.stop()
    assert all(0 <= bar_index(f.image) < N for f in frames)
    assert names.calls == ["camera.test"] and front.sni == ["camera.test"]


def test_every_reconnect_looks_up_again_and_a_name_rebound_to_a_refused_address_is_refused(clip):
    # the first answer is the camera, the next one (after the camera drops) the refused
    # address, where a trap listens on the camera's port: DNS rebinding
    server = RtspServer(clip).start()
    trap = Trap(DENIED, server.port)
    names = Names(camera_test=[["127.0.0.1"], [DENIED]])
    events = []
    try:
        src = LiveSource(check_source(f"rtsp://admin:{SECRET}@camera.test:{server.port}/stream", None), config(),
                         on_event=lambda name, data: events.append((name, data)), resolve=names)
        with src:
            frames = iter(src)
            first = [next(frames) for _ in range(5)]
            server.stop()
            with pytest.raises(NetworkRefused) as info:
                for _ in frames:
                    pass
    finally:
        server.stop()
        trap.close()
    assert all(0 <= bar_index(f.image) < N for f in first)
    assert str(info.value) == (f"rtsp://***@camera.test:{server.port}/stream: host 'camera.test' resolves to "
                               f"{DENIED}, refused by source.deny_networks")
    assert names.calls == ["camera.test", "camera.test"]       # once per connection
    assert trap.hits == 0
    assert [n for n, _ in events] == ["reconnecting"]           # refused at once, not retried
    assert SECRET not in repr(events) and SECRET not in str(src.stats)


def test_a_name_that_does_not_resolve_is_retried_like_an_unreachable_camera():
    names = Names()
    events = []
    with pytest.raises(SourceError) as info:
        LiveSource(check_source("rtsp://gone.test/stream", None), config(give_up_s=1.0),
                   on_event=lambda name, data: events.append(data), resolve=names)
    assert not isinstance(info.value, SourceRefused)
    assert "unreachable for 1 s: gone.test does not resolve" in str(info.value)
    assert len(names.calls) == len(events) + 1 >= 2


# ---- HTTP redirects, HLS -----------------------------------------------------------------------

def test_an_http_redirect_to_a_refused_address_is_not_followed(clip, trap):
    site = Site()
    site.routes["/cam"] = (302, {"Location": f"http://{DENIED}:{trap.port}/latest/meta-data/"}, b"")
    events = []
    try:
        with pytest.raises(NetworkRefused) as info:
            LiveSource(check_source(site.url("/cam").replace("://", f"://admin:{SECRET}@"), None), config(),
                       on_event=lambda name, data: events.append(data))
    finally:
        site.close()
    assert str(info.value) == (
        f"http://***@127.0.0.1:{site.port}/cam: the server redirected to http://{DENIED}:{trap.port}/latest/"
        f"meta-data/: {DENIED} is refused by source.deny_networks")
    assert trap.hits == 0 and events == [] and site.seen == ["/cam"]


@pytest.mark.parametrize("location", [
    "http://2130706434:{port}/",                   # 127.0.0.2 in decimal
    "http://[::ffff:127.0.0.2]:{port}/",
    "httpproxy://127.0.0.2:{port}/x:80",           # FFmpeg's own HLS would open this one itself
    "file:///etc/passwd",
    "ftp://127.0.0.2:{port}/x.ts",
])
def test_redirects_in_other_spellings_and_schemes_are_refused_too(trap, location):
    site = Site()
    site.routes["/cam"] = (301, {"Location": location.format(port=trap.port)}, b"")
    try:
        with pytest.raises(SourceRefused) as info:
            LiveSource(check_source(site.url("/cam"), None), config())
    finally:
        site.close()
    assert "redirect" in str(info.value)
    assert trap.hits == 0


def test_a_redirect_to_an_allowed_address_is_followed(clip):
    server = HttpTsServer(clip).start()
    site = Site()
    site.routes["/cam"] = (307, {"Location": f"http://127.0.0.1:{server.port}/stream.ts"}, b"")
    try:
        with LiveSource(check_source(site.url("/cam"), None), config()) as src:
            frames = take(src, 10)
    finally:
        site.close()
        server.stop()
    assert all(0 <= bar_index(f.image) < N for f in frames)


@pytest.mark.parametrize("case", ["segment", "variant", "httpproxy-segment", "encrypted"])
def test_hls_playlists_cannot_lead_to_a_refused_address(segments, trap, case):
    site = Site()
    first = next(n for n in sorted(segments) if n.endswith(".ts"))
    denied = f"http://{DENIED}:{trap.port}"
    site.routes["/index.m3u8"] = (200, M3U8, {
        "segment": playlist(first, f"{denied}/seg.ts"),
        "variant": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\n" + f"{denied}/low.m3u8\n".encode(),
        "httpproxy-segment": playlist(first, f"httpproxy://{DENIED}:{trap.port}/seg.ts"),
        "encrypted": playlist(first, key="/key.bin"),
    }[case])
    site.routes[f"/{first}"] = (200, TS, segments[first])
    site.routes["/key.bin"] = (200, {}, bytes(16))
    try:
        with pytest.raises(SourceRefused) as info:
            with LiveSource(check_source(site.url("/index.m3u8"), None), config()) as src:
                take(src, 3 * N)
    finally:
        site.close()
    why = str(info.value)
    assert trap.hits == 0
    if case in ("segment", "variant"):
        assert isinstance(info.value, NetworkRefused)
        assert f"the stream asked for {denied}/" in why and "refused by source.deny_networks" in why
    elif case == "httpproxy-segment":
        assert "the stream asked to open a 'httpproxy:' URL" in why
    else:
        assert "AES-encrypted HLS" in why


def test_an_hls_source_with_credentials_answers_a_basic_challenge(segments):
    site = Site(auth=("admin", SECRET))
    site.routes.update({f"/{n}": (200, M3U8 if n.endswith("m3u8") else TS, b) for n, b in segments.items()})
    try:
        url = site.url("/index.m3u8").replace("://", f"://admin:{SECRET}@")
        with LiveSource(check_source(url, None), config()) as src:
            frames = take(src, N)
    finally:
        site.close()
    assert [bar_index(f.image) for f in frames] == list(range(N))


def test_proxies_from_the_environment_are_not_used(clip, trap, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "all_proxy"):
        monkeypatch.setenv(var, f"http://{DENIED}:{trap.port}")
    monkeypatch.setenv("no_proxy", "*")
    with HttpTsServer(clip) as server, LiveSource(check_source(server.url, None), config()) as src:
        frames = take(src, 5)
    assert all(0 <= bar_index(f.image) < N for f in frames) and trap.hits == 0


# ---- RTSP ----------------------------------------------------------------------------------------

class RedirectingRtsp:
    """An RTSP server that answers OPTIONS, then redirects DESCRIBE to ``location``."""

    def __init__(self, location: str):
        self.location = location
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn, conn.makefile("rb") as reader:
                while True:
                    head = []
                    while (line := reader.readline()) not in (b"\r\n", b""):
                        head.append(line.decode())
                    if not head:
                        return
                    cseq = next(h.split(":")[1].strip() for h in head if h.lower().startswith("cseq"))
                    if head[0].startswith("OPTIONS"):
                        reply = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: DESCRIBE, SETUP, PLAY\r\n\r\n"
                    else:
                        reply = f"RTSP/1.0 302 Moved Temporarily\r\nCSeq: {cseq}\r\nLocation: {self.location}\r\n\r\n"
                    conn.sendall(reply.encode())
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


def test_an_rtsp_redirect_is_refused(trap):
    server = RedirectingRtsp(f"rtsp://admin:{SECRET}@{DENIED}:{trap.port}/stream")
    events = []
    try:
        with pytest.raises(SourceRefused) as info:
            LiveSource(check_source(f"rtsp://127.0.0.1:{server.port}/cam", None), config(),
                       on_event=lambda name, data: events.append(data))
    finally:
        server.close()
    assert str(info.value) == (
        f"rtsp://127.0.0.1:{server.port}/cam: the RTSP server redirected (302) to rtsp://***@{DENIED}:{trap.port}"
        "/stream; RTSP redirects are not followed (FFmpeg would make that connection itself): submit that address")
    assert trap.hits == 0 and events == []


def test_rtsp_over_udp_is_refused_unless_allowed(clip):
    with RtspServer(clip) as server:
        with pytest.raises(SourceRefused, match="RTSP over UDP is refused: .* set source.rtsp_udp: true$"):
            LiveSource(check_source(server.url, None), config(), transport="udp")
        names = Names(camera_test=[["127.0.0.1"]])   # allowed: FFmpeg gets the checked address
        url = f"rtsp://camera.test:{server.port}/stream"
        with LiveSource(check_source(url, None), config(rtsp_udp=True), transport="udp", resolve=names) as src:
            frames = take(src, 5)
    assert all(0 <= bar_index(f.image) < N for f in frames) and names.calls == ["camera.test"]


def test_an_attempt_forgets_the_last_refusal_and_one_made_after_close_is_ended():
    gateway = Gateway(NetworkPolicy.from_config(config()), Names())
    refusal = gateway.refuse(SourceRefused("first"))
    assert gateway.refuse(SourceRefused("second")) is not refusal and gateway.refusal is refusal
    gateway.failed("unreachable")
    closed: list[str] = []
    route = gateway.attempt(lambda: Route("rtsp://a.test/", close=lambda: closed.append("first")))
    assert route.url == "rtsp://a.test/" and gateway.refusal is None and gateway.error is None
    gateway.check()   # nothing refused in this attempt: no raise
    gateway.close()
    assert closed == ["first"]
    with pytest.raises(OSError, match="^the source is closed$"):
        gateway.attempt(lambda: Route("rtsp://b.test/", close=lambda: closed.append("second")))
    assert closed == ["first", "second"]
