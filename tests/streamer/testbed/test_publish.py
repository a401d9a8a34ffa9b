"""streamer.testbed: the RTSP and HTTP live servers, checked with PyAV as the client and
with a raw socket speaking RTSP, on real encoded video over loopback."""
from __future__ import annotations

import base64
import re
import socket
import struct
import time
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.testbed import HttpTsServer, RtspServer
from testsupport.bar_clip import FPS, H, N, W, bar_index, write_bar_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_bar_clip(tmp_path_factory.mktemp("publish") / "bar.mp4")


def client(url: str, **options) -> av.container.InputContainer:
    """PyAV as the client, probing briefly so that frames come out in real time sooner."""
    return av.open(url, options={"analyzeduration": "200000", **options}, timeout=(5, 5))


def decode(url: str, frames: int, **options) -> list[tuple[av.VideoFrame, float]]:
    """The first ``frames`` frames a PyAV client gets, with their arrival times."""
    got = []
    with client(url, **options) as c:
        for f in c.decode(video=0):
            got.append((f, time.monotonic()))
            if len(got) == frames:
                break
    return got


def assert_consecutive(frames: list[av.VideoFrame]) -> None:
    """Right size, and consecutive frames of the file (looping) with none missing."""
    assert all((f.width, f.height) == (W, H) for f in frames)
    shown = [bar_index(f.to_ndarray(format="rgb24")) for f in frames]
    assert all(0 <= i < N for i in shown), shown
    assert [(b - a) % N for a, b in zip(shown, shown[1:])] == [1] * (len(frames) - 1), shown


def assert_live_sequence(got, tick: float = 90_000 / FPS) -> None:
    """Consecutive frames with continuous 90 kHz timestamps (an RTSP client may not
    time the very first frame)."""
    frames = [f for f, _ in got]
    assert_consecutive(frames)
    stamps = [f.pts for f in frames if f.pts is not None]
    assert len(stamps) >= len(frames) - 1
    assert np.allclose(np.diff(stamps), tick, atol=1), stamps


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_plays_the_file_in_real_time_and_loops(clip, transport):
    with RtspServer(clip) as server:
        assert re.fullmatch(rf"rtsp://127\.0\.0\.1:{server.port}/stream", server.url)
        got = decode(server.url, 45, rtsp_transport=transport)
    assert_live_sequence(got)  # 45 > N frames: crosses the loop with continuous timestamps
    # Paced at the file's rate once the client's probing burst is over.
    assert got[-1][1] - got[15][1] == pytest.approx(29 / FPS, abs=0.25)


def test_http_ts_plays_the_file_in_real_time_and_loops(clip):
    with HttpTsServer(clip) as server:
        assert server.url == f"http://127.0.0.1:{server.port}/stream.ts"
        got = decode(server.url, 45)
    assert_live_sequence(got)
    assert got[-1][1] - got[15][1] == pytest.approx(29 / FPS, abs=0.25)


def test_several_clients_at_once(clip):
    with RtspServer(clip) as rtsp, HttpTsServer(clip) as http:
        clients = [client(rtsp.url, rtsp_transport="tcp"), client(rtsp.url, rtsp_transport="udp"),
                   client(http.url)]
        streams = [c.decode(video=0) for c in clients]
        got = [[], [], []]
        for _ in range(20):
            for frames, stream in zip(got, streams):
                frames.append((next(stream), 0.0))
        for c in clients:
            c.close()
    for frames in got:
        assert_live_sequence(frames)


def test_stop_drops_clients_and_the_port_can_be_reused_at_once(clip):
    server = RtspServer(clip).start()
    port = server.port
    container = client(server.url, rtsp_transport="tcp")
    frames = container.decode(video=0)
    next(frames)
    server.stop()
    stopped = time.monotonic()
    with pytest.raises((StopIteration, av.error.FFmpegError)):
        for _ in range(2 * FPS):  # what was buffered, then the end
            next(frames)
    assert time.monotonic() - stopped < 1.0
    container.close()
    with RtspServer(clip, port=port) as again:
        assert again.port == port
        assert_live_sequence(decode(again.url, 3, rtsp_transport="tcp"))
    server.stop()  # idempotent


def test_fps_override_and_no_loop_ends_the_stream(clip):
    with RtspServer(clip, fps=50, loop=False) as server:
        assert server.fps == 50
        with client(server.url, rtsp_transport="tcp") as c:
            got = [(f, 0.0) for f in c.decode(video=0)]  # ends: the server hangs up
    assert 15 <= len(got) <= N
    assert_live_sequence(got, tick=90_000 / 50)
    assert bar_index(got[-1][0].to_ndarray(format="rgb24")) == N - 1


@pytest.mark.parametrize("server_type", [RtspServer, HttpTsServer])
def test_replay_serves_the_loop_from_one_encoding(clip, server_type):
    """A replaying server encodes the file once at start; a client joining later starts at
    a keyframe within a second and gets the loop, frame after frame, in real time."""
    with server_type(clip, replay=True) as server:
        publisher = server._publisher
        assert publisher._replay is not None and len(publisher._replay) == N
        assert publisher._replay[0].keyframe
        time.sleep(0.4)  # join mid-loop
        joined = time.monotonic()
        got = decode(server.url, 40, **({"rtsp_transport": "tcp"} if server_type is RtspServer else {}))
    assert_live_sequence(got)
    assert got[0][1] - joined < 2.0
    assert got[-1][1] - got[10][1] == pytest.approx(29 / FPS, abs=0.25)


def test_not_a_video_fails_at_start(tmp_path, clip):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    with pytest.raises(av.error.FFmpegError):
        RtspServer(text).start()
    with pytest.raises(FileNotFoundError):
        HttpTsServer(tmp_path / "missing.mp4").start()
    with pytest.raises(ValueError):
        RtspServer(clip, fps=0)


# ---- RTSP and RTP on the wire ---------------------------------------------------------


class RawRtsp:
    """A bare RTSP client on one TCP connection; interleaved RTP is collected."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.reader = self.sock.makefile("rb")
        self.cseq = 0
        self.rtp: list[bytes] = []

    def request(self, method: str, url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}"]
        lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return self.response()

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while (first := self.reader.read(1)) == b"$":
            self._interleaved()
        status = (first + self.reader.readline()).decode()
        headers = {}
        while line := self.reader.readline().decode().strip():
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        body = self.reader.read(int(headers.get("content-length", 0)))
        return int(status.split()[1]), headers, body

    def collect(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            assert self.reader.read(1) == b"$"
            self._interleaved()

    def _interleaved(self) -> None:
        channel, length = struct.unpack("!BH", self.reader.read(3))
        data = self.reader.read(length)
        if channel == 0:
            self.rtp.append(data)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def depacketise(packets: list[bytes], ssrc: int) -> list[tuple[int, list[bytes]]]:
    """RFC 6184 by the book: (timestamp, NAL units) per access unit, checking every
    header on the way."""
    units, nals, fragment = [], [], None
    for packet in packets:
        first, second, _, timestamp, packet_ssrc = struct.unpack("!BBHII", packet[:12])
        assert (first >> 6, first & 0x3F, second & 0x7F, packet_ssrc) == (2, 0, 96, ssrc)
        payload = packet[12:]
        kind = payload[0] & 0x1F
        if kind == 28:  # FU-A
            start, end = payload[1] & 0x80, payload[1] & 0x40
            assert (fragment is None) == bool(start)
            if start:
                fragment = bytes([(payload[0] & 0xE0) | (payload[1] & 0x1F)])
            fragment += payload[2:]
            if end:
                nals.append(fragment)
                fragment = None
        else:
            assert 1 <= kind <= 23 and fragment is None
            nals.append(payload)
        if second & 0x80:  # marker: last packet of the access unit
            assert fragment is None
            units.append((timestamp, nals))
            nals = []
    return units


def test_rtsp_dialogue_and_rfc6184_packets(clip):
    with RtspServer(clip) as server:
        raw = RawRtsp(server.port)
        try:
            code, headers, _ = raw.request("OPTIONS", server.url)
            assert code == 200 and headers["cseq"] == "1"
            assert set(headers["public"].split(", ")) >= {"DESCRIBE", "SETUP", "PLAY", "TEARDOWN",
                                                          "GET_PARAMETER", "SET_PARAMETER"}
            code, headers, sdp = raw.request("DESCRIBE", server.url, Accept="application/sdp")
            assert code == 200 and headers["content-type"] == "application/sdp"
            fmtp = re.search(r"a=fmtp:96 (.*)\r\n", sdp.decode()).group(1)
            assert "packetization-mode=1" in fmtp and "a=rtpmap:96 H264/90000" in sdp.decode()
            sps, pps = (base64.b64decode(x) for x in re.search(r"sprop-parameter-sets=([^;]+)", fmtp)
                        .group(1).split(","))
            assert (sps[0] & 0x1F, pps[0] & 0x1F) == (7, 8)
            assert re.search(r"profile-level-id=([0-9A-F]{6})", fmtp).group(1) == sps[1:4].hex().upper()

            assert raw.request("PLAY", server.url)[0] == 455  # nothing set up yet
            track = f"{headers['content-base']}trackID=0"
            code, headers, _ = raw.request("SETUP", track, Transport="RTP/AVP;multicast")
            assert code == 461
            code, headers, _ = raw.request("SETUP", track, Transport="RTP/AVP/TCP;unicast;interleaved=0-1")
            assert code == 200
            session = headers["session"].split(";")[0]
            ssrc = int(re.search(r"ssrc=([0-9A-F]{8})", headers["transport"]).group(1), 16)
            assert raw.request("PLAY", server.url, Session="nope")[0] == 454
            code, headers, _ = raw.request("PLAY", server.url, Session=session)
            assert code == 200
            info = dict(kv.split("=") for kv in headers["rtp-info"].split(";")[1:])
            raw.collect(1.3)
            code, _, _ = raw.request("GET_PARAMETER", server.url, Session=session)
            assert code == 200  # keep-alive, answered between RTP packets
            assert raw.request("SET_PARAMETER", server.url, Session=session)[0] == 200
            assert raw.request("PAUSE", server.url, Session=session)[0] == 501
            assert raw.request("TEARDOWN", server.url, Session=session)[0] == 200
            sent = len(raw.rtp)
            raw.sock.settimeout(0.5)
            with pytest.raises(socket.timeout):
                raw.collect(1.0)  # nothing more after TEARDOWN
            assert len(raw.rtp) == sent
        finally:
            raw.close()

    packets = raw.rtp
    seqs = [struct.unpack("!H", p[2:4])[0] for p in packets]
    assert seqs[0] == int(info["seq"])
    assert [(b - a) % 65536 for a, b in zip(seqs, seqs[1:])] == [1] * (len(seqs) - 1)
    units = depacketise(packets, ssrc)
    assert len(units) >= FPS  # 1.3 s of a 25 fps stream, starting at a keyframe
    stamps = [t for t, _ in units]
    assert (stamps[0] - int(info["rtptime"])) % 2**32 < 90_000
    assert [(b - a) % 2**32 for a, b in zip(stamps, stamps[1:])] == [90_000 // FPS] * (len(units) - 1)
    first = [n[0] & 0x1F for n in units[0][1]]
    assert first[:2] == [7, 8] and 5 in first  # the client starts at an IDR with its SPS/PPS
    assert units[0][1][0] == sps and units[0][1][1] == pps
    assert any(len(p) > 1400 for _, nals in units for p in nals)  # so FU-A was exercised
    assert max(len(p) for p in packets) <= 1412

    decoder = av.CodecContext.create("h264", "r")
    pictures = []
    for _, nals in units:
        au = b"".join(b"\x00\x00\x00\x01" + n for n in nals)
        pictures += decoder.decode(av.Packet(au))
    pictures += decoder.decode(None)
    assert len(pictures) == len(units)
    assert_consecutive(pictures)


def test_rtsp_refuses_what_it_does_not_serve(clip):
    with RtspServer(clip) as server:
        raw = RawRtsp(server.port)
        try:
            base = f"rtsp://127.0.0.1:{server.port}"
            assert raw.request("DESCRIBE", f"{base}/other")[0] == 404
            assert raw.request("RECORD", server.url)[0] == 501
            assert raw.request("SETUP", f"{server.url}/trackID=9",
                                  Transport="RTP/AVP/TCP;interleaved=0-1")[0] == 404
            raw.sock.sendall(b"HELLO\r\n\r\n")
            assert raw.reader.read(1) == b""  # not RTSP: hung up
        finally:
            raw.close()


def test_http_answers(clip):
    def ask(port: int, request: bytes) -> tuple[str, bytes]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(4096)
            head, _, body = data.partition(b"\r\n\r\n")
            return head.decode(), body

    with HttpTsServer(clip) as server:
        head, _ = ask(server.port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        assert head.startswith("HTTP/1.1 404")
        head, _ = ask(server.port, b"POST /stream.ts HTTP/1.1\r\nHost: x\r\n\r\n")
        assert head.startswith("HTTP/1.1 405")
        head, _ = ask(server.port, b"GET /stream.ts HTTP/1.1\r\nHost: x\r\n\r\n")
        assert head.startswith("HTTP/1.1 200")
        assert "Content-Type: video/mp2t" in head and "Connection: close" in head
        assert "Content-Length" not in head  # endless: the body ends when the connection does
