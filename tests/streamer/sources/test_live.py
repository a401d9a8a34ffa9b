"""streamer.sources.live.LiveSource against the real RTSP and HTTP servers of streamer.testbed:
frames over every transport, dropping when behind, reconnecting, giving up, closing."""
from __future__ import annotations

import functools
import http.server
import socket
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.config import SourceConfig
from streamer.sources.files import FileSource, open_source
from streamer.sources.frames import SourceError, SourceRejected
from streamer.sources.live import LiveSource, _Arrivals, decode_threading
from streamer.sources.urls import SourceRefused, Transport, check_source
from streamer.testbed import HttpTsServer, RtspServer
from testsupport.bar_clip import FPS, H, N, W, bar_index, write_bar_clip

SECRET = "s3cret"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_bar_clip(tmp_path_factory.mktemp("live") / "bar.mp4")


def config(**kw) -> SourceConfig:
    """Quick reconnects for tests; a generous buffer unless a test is about dropping."""
    return SourceConfig(**{"queue_frames": 64, "reconnect_s": 0.2, "reconnect_max_s": 0.5,
                           "give_up_s": 10.0, "open_timeout_s": 3.0, **kw})


def with_credentials(url: str) -> str:
    return url.replace("://", f"://admin:{SECRET}@", 1)


class Events(list):
    """on_event that records (name, data, monotonic time)."""

    def __call__(self, name: str, data: dict) -> None:
        self.append((name, data, time.monotonic()))

    def named(self, name: str) -> list[dict]:
        return [d for n, d, _ in self if n == name]


def take(frames, n: int) -> list:
    return [next(frames) for _ in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("server_class,transport", [(RtspServer, "tcp"), (RtspServer, "udp"),
                                                    (HttpTsServer, "tcp")],
                         ids=["rtsp-tcp", "rtsp-udp", "http"])
def test_frames_arrive_in_order_with_their_content(clip, server_class, transport):
    with server_class(clip) as server:
        before = time.time()
        # RTSP over UDP is off by default (its RTP endpoints escape the network policy)
        with LiveSource(check_source(server.url, None), config(rtsp_udp=transport == "udp"),
                        transport=transport) as src:
            assert (src.fps, src.width, src.height) == (FPS, W, H)
            assert src.is_live is True and src.frame_count_estimate is None
            frames = take(iter(src), N + 10)  # across the server's loop
            stats = dict(src.stats)
    assert [f.index for f in frames] == list(range(N + 10))
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
    shown = [bar_index(f.image) for f in frames]
    assert [(b - a) % N for a, b in zip(shown, shown[1:])] == [1] * (N + 9), shown
    assert frames[0].pts == 0.0
    assert np.allclose(np.diff([f.pts for f in frames]), 1 / FPS, atol=0.02)
    assert all(before <= f.captured <= time.time() for f in frames)
    assert stats["yielded"] == N + 10 and stats["dropped"] == stats["reconnects"] == 0


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_hls_plays_within_the_protocol_whitelist(clip, tmp_path):
    """An HLS playlist and its segments over HTTP: everything the hls demuxer opens on
    the stream's behalf is allowed by the policy's whitelist."""
    with av.open(str(clip)) as source, av.open(str(tmp_path / "index.m3u8"), "w", format="hls",
                                               options={"hls_time": "0.4", "hls_list_size": "0",
                                                        "hls_playlist_type": "vod"}) as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        spec = check_source(f"http://127.0.0.1:{server.server_address[1]}/index.m3u8", None)
        assert "hls" in spec.av_options["protocol_whitelist"].split(",")
        with LiveSource(spec, config()) as src:
            frames = take(iter(src), N)
    finally:
        server.shutdown()
        server.server_close()
    assert [bar_index(f.image) for f in frames] == list(range(N))
    assert [f.index for f in frames] == list(range(N))


def test_a_slow_consumer_gets_the_freshest_frames_and_drops_are_counted(clip):
    with RtspServer(clip) as server, LiveSource(check_source(server.url, None),
                                                config(queue_frames=4)) as src:
        frames = iter(src)
        take(frames, 20)  # past the burst the client's probing leaves behind
        time.sleep(1.0)   # 25 frames arrive meanwhile
        woke = time.time()
        after = take(frames, 10)
        stats = dict(src.stats)
    # Only what the buffer holds (4), plus the frame being decoded as the consumer woke,
    # predates the wake-up: the consumer is never more than the buffer behind.
    waited = [f for f in after if f.captured < woke]
    assert 3 <= len(waited) <= 4 + 1
    assert woke - after[0].captured <= 5 / FPS + 0.1
    assert [f.index for f in after] == list(range(after[0].index, after[0].index + 10))
    assert after[0].index >= 20 + 15  # most of the second's frames went
    assert stats["dropped"] >= 15 and stats["dropped_stale"] == 0
    assert stats["yielded"] + stats["dropped"] <= stats["received"] <= stats["yielded"] + stats["dropped"] + 4


def test_frames_older_than_the_staleness_budget_are_dropped(clip):
    with RtspServer(clip) as server, LiveSource(check_source(server.url, None),
                                                config(queue_frames=16, staleness_s=0.2)) as src:
        frames = iter(src)
        take(frames, 20)
        time.sleep(1.0)
        ages = [time.time() - next(frames).captured for _ in range(10)]
        stats = dict(src.stats)
    assert max(ages) < 0.2 + 0.05
    assert stats["dropped_stale"] >= 8  # the buffer's 16 frames span 0.64 s
    assert stats["dropped"] >= stats["dropped_stale"] + 5  # and ~25 came while asleep


@pytest.mark.parametrize("server_class", [RtspServer, HttpTsServer], ids=["rtsp", "http"])
def test_reconnects_when_the_server_comes_back_on_the_same_port(clip, server_class):
    events = Events()
    server = server_class(clip).start()
    port = server.port
    spec = check_source(with_credentials(server.url), None)
    restarted: list = []
    try:
        with LiveSource(spec, config(), on_event=events) as src:
            frames = iter(src)
            take(frames, 10)
            server.stop()
            stopped, stopped_wall = time.monotonic(), time.time()
            restart = threading.Timer(0.8, lambda: restarted.append(server_class(clip, port=port).start()))
            restart.start()
            try:
                # What was in flight when the server went, then frames of the new connection.
                seen = take(frames, 3)
                while seen[-1].captured < stopped_wall + 0.8:
                    seen.append(next(frames))
                received = time.monotonic()
                seen += take(frames, 10)
            finally:
                restart.join()
            stats = dict(src.stats)
    finally:
        # the new server goes only once the source is closed: stopped while the source still
        # reads, it would be one more reconnect (seen on a slow machine)
        for again in restarted:
            again.stop()
    names = [n for n, _, _ in events]
    assert names[0] == "reconnecting" and names[-1] == "reconnected" and names.count("reconnected") == 1
    attempts = events.named("reconnecting")
    assert [d["attempt"] for d in attempts] == list(range(1, len(attempts) + 1))
    assert attempts[0]["error"] in ("the stream ended", "Input/output error")
    assert {d["error"] for d in attempts[1:]} <= {"Connection refused"}
    assert events.named("reconnected")[0]["attempt"] == len(attempts)
    assert 0.8 <= events.named("reconnected")[0]["down_s"] <= received - stopped + 0.2
    assert SECRET not in repr(events) and SECRET not in repr(stats)
    assert stats["reconnects"] == len(attempts) and stats["last_error"]   # what the events count
    # One stream to the consumer: indices keep counting, pts keeps increasing, and the
    # outage shows as a gap in pts.
    assert all(a.index + 1 == b.index for a, b in zip(seen, seen[1:]))
    steps = np.diff([f.pts for f in seen])
    assert steps.min() > 0 and np.sum(steps > 0.3) == 1 and steps.max() >= 0.5
    assert all(0 <= bar_index(f.image) < N and f.image.shape == (H, W, 3) for f in seen)


def test_gives_up_when_the_server_never_comes_back(clip):
    events = Events()
    server = RtspServer(clip).start()
    spec = check_source(with_credentials(server.url), None)
    with LiveSource(spec, config(give_up_s=3.0, reconnect_max_s=1.0), on_event=events) as src:
        frames = iter(src)
        take(frames, 5)
        server.stop()
        stopped = time.monotonic()
        with pytest.raises(SourceError) as info:
            for _ in frames:
                pass
        failed = time.monotonic() - stopped
        stats = dict(src.stats)
    assert 2.5 <= failed <= 5.0
    assert str(info.value) == f"rtsp://***@127.0.0.1:{server.port}/stream: unreachable for 3 s: Connection refused"
    delays = [d["delay_s"] for d in events.named("reconnecting")]
    assert len(delays) >= 3 and not events.named("reconnected")
    assert SECRET not in repr(events) and SECRET not in repr(stats)
    assert stats["last_error"] == "Connection refused"


@pytest.mark.parametrize("server_class", [RtspServer, HttpTsServer], ids=["rtsp", "http"])
def test_an_answer_that_will_not_change_fails_at_once_and_right_credentials_stream(clip, server_class):
    """A 404 for the path and a 401 for wrong or missing credentials come back on every
    try: the source fails with the answer, without one retry (give_up_s is far away)."""
    with server_class(clip, credentials=("admin", SECRET)) as server:
        base = server.url.removesuffix(server.path)
        label = base.replace("://", "://***@", 1)
        cases = {f"{base.replace('://', f'://admin:{SECRET}@', 1)}/nothing-here": f"{label}/nothing-here "
                                                                                  "answered 404 Not Found",
                 f"{base.replace('://', '://admin:wrong@', 1)}{server.path}": f"{label}{server.path} "
                                                                             "answered 401 Unauthorized",
                 f"{base}{server.path}": f"{base}{server.path} answered 401 Unauthorized"}
        for url, message in cases.items():
            events = Events()
            src = LiveSource(check_source(url, None), config(give_up_s=60.0), on_event=events, wait=False)
            with pytest.raises(SourceRejected) as info:
                src.wait_ready()
            assert str(info.value) == message
            assert src.stats["reconnects"] == 0 and src.stats["last_error"] == message and events == []
            assert SECRET not in str(info.value) and "wrong" not in str(info.value)
            src.close()
        # the right credentials: a 401 first (RTSP asks before FFmpeg sends them), then frames
        with LiveSource(check_source(with_credentials(server.url), None), config()) as src:
            assert len(take(iter(src), 5)) == 5 and src.stats["reconnects"] == 0


def test_backoff_doubles_with_jitter_up_to_the_cap_and_open_fails_after_give_up():
    events = Events()
    spec = check_source(f"rtsp://127.0.0.1:{free_port()}/stream", None)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"^rtsp://127\.0\.0\.1:\d+/stream: unreachable for 2 s: Connection refused$"):
        LiveSource(spec, config(give_up_s=2.0, reconnect_s=0.2, reconnect_max_s=0.5), on_event=events)
    assert 2.0 <= time.monotonic() - started <= 3.0
    delays = [d["delay_s"] for d in events.named("reconnecting")]
    nominal = [0.2, 0.4, 0.5, 0.5, 0.5, 0.5]
    assert len(delays) >= 4
    for delay, cap in zip(delays[:-1], nominal):  # the last one is cut to the deadline
        assert 0.8 * cap - 1e-3 <= delay <= cap + 1e-3
    assert any(abs(d - cap) > 2e-3 for d, cap in zip(delays, nominal))  # jittered, not in lockstep


def test_silent_server_times_out_at_open():
    with socket.socket() as mute:  # accepts connections and never says a word
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        spec = check_source(f"rtsp://127.0.0.1:{mute.getsockname()[1]}/stream", None)
        events = Events()
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"unreachable for 2 s: no answer within [\d.]+ s$"):
            LiveSource(spec, config(open_timeout_s=1.0, give_up_s=2.0), on_event=events)
        assert time.monotonic() - started <= 3.0  # the last attempt is cut to the deadline
        assert events.named("reconnecting")[0]["error"] == "no answer within 1 s"


class Relay:
    """A TCP relay to a server that can be frozen: the link stays up, data stops, as
    when a camera's network goes away without closing anything."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.frozen = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                while self.frozen.is_set():
                    time.sleep(0.05)
                b.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        for s in [self.listener, *self.sockets]:
            s.close()


def test_a_stalled_link_is_noticed_within_seconds_and_reconnected(clip):
    events = Events()

    def thaw_and_record(name: str, data: dict) -> None:
        relay.frozen.clear()  # the link comes back once the source has noticed
        events(name, data)

    with RtspServer(clip) as server:
        relay = Relay(server.port)
        try:
            spec = check_source(f"rtsp://127.0.0.1:{relay.port}/stream", None)
            with LiveSource(spec, config(), on_event=thaw_and_record) as src:
                frames = iter(src)
                take(frames, 10)
                relay.frozen.set()
                frozen = time.monotonic()
                take(frames, 10)  # the frames in flight, the wait, the new connection's
        finally:
            relay.close()
    assert [n for n, _, _ in events] == ["reconnecting", "reconnected"]
    assert events.named("reconnecting")[0]["error"] == "no data for 2 s"
    assert 1.8 <= events[0][2] - frozen <= 3.0


def test_close_from_another_thread_releases_a_waiting_iterator(clip):
    server = RtspServer(clip).start()
    src = LiveSource(check_source(server.url, None), config())
    frames = iter(src)
    take(frames, 3)
    server.stop()  # the iterator will wait for a reconnect that cannot happen
    closer = threading.Timer(0.5, src.close)
    closer.start()
    started = time.monotonic()
    rest = list(frames)  # ends (no error) when closed
    assert time.monotonic() - started <= 0.5 + 1.0
    closer.join()
    assert len(rest) < 2 * FPS
    src.close()  # idempotent
    assert list(iter(src)) == []


def test_close_aborts_the_wait_for_a_first_frame():
    spec = check_source(f"rtsp://127.0.0.1:{free_port()}/stream", None)
    src = LiveSource(spec, config(give_up_s=30.0), wait=False)
    assert (src.width, src.height, src.fps) == (0, 0, 0.0)
    threading.Timer(0.3, src.close).start()
    started = time.monotonic()
    with pytest.raises(SourceError, match="closed before the first frame"):
        src.wait_ready()
    assert time.monotonic() - started <= 1.0


def test_listener_errors_do_not_stop_the_stream(clip):
    def broken(name: str, data: dict) -> None:
        raise RuntimeError("listener bug")

    server = RtspServer(clip).start()
    port = server.port
    with LiveSource(check_source(server.url, None), config(), on_event=broken) as src:
        frames = iter(src)
        take(frames, 3)
        server.stop()
        server = RtspServer(clip, port=port).start()
        try:
            while not src.stats["reconnects"]:  # the listener raised at every event
                next(frames)
            assert 0 <= bar_index(next(frames).image) < N
        finally:
            server.stop()


def test_open_source_picks_the_source_by_url(clip, tmp_path):
    with open_source(str(clip), config()) as src:
        assert isinstance(src, FileSource) and src.is_live is False
        frames = list(src)
    assert len(frames) == N and all(f.captured > 0 for f in frames)
    with RtspServer(clip) as server:
        events = Events()
        with pytest.raises(SourceRefused, match="RTSP over UDP is refused"):
            open_source(server.url, config(), media_root=None, transport="udp")
        with open_source(server.url, config(rtsp_udp=True), media_root=None, on_event=events,
                         transport="udp") as src:
            assert isinstance(src, LiveSource) and src.transport is Transport.UDP   # the word, as its member
            assert 0 <= bar_index(next(iter(src)).image) < N
    with pytest.raises(SourceRefused):
        open_source(str(clip), config(), media_root=None)
    with pytest.raises(SourceRefused):
        open_source(str(clip), config(), media_root=str(tmp_path))
    with pytest.raises(SourceRefused):
        open_source("concat:a.mp4|b.mp4", config())
    with pytest.raises(ValueError, match="^transport must be 'tcp' or 'udp', got 'http'$"):
        open_source("rtsp://127.0.0.1:1/x", config(), transport="http")


@pytest.mark.parametrize("option,value", [("fps", 5.0), ("every", 3)])
def test_fps_and_every_sample_a_live_stream_too(clip, option, value):
    with RtspServer(clip) as server, LiveSource(check_source(server.url, None), config(**{option: value})) as src:
        frames = take(iter(src), 6)
        stats = dict(src.stats)
    if option == "every":
        assert all(f.index % 3 == 0 for f in frames)
        assert [b.index - a.index for a, b in zip(frames, frames[1:])] == [3] * 5
    else:   # one frame per 1/5 s slot of the stream's own clock
        gaps = np.diff([f.pts for f in frames])
        assert np.all(gaps > 0.75 / value) and np.all(gaps < 1.5 / value), gaps
    assert stats["skipped_by_sampling"] >= 5 * 2 and stats["dropped"] == 0


def test_a_frame_is_stamped_with_the_arrival_of_its_packet_even_when_decoded_later():
    """A reordered (B-) frame comes out of the decoder after packets that arrived later:
    its ``captured`` is still when its own data came in."""
    arrivals = _Arrivals(clock=iter([10.0, 10.1, 10.2]).__next__)
    for pts in (0, 3000, 1500):        # decode order: I, P, then the B frame between them
        arrivals.note(pts)
    assert [arrivals.of(pts) for pts in (0, 1500, 3000)] == [10.0, 10.2, 10.1]
    assert arrivals.of(1500) is None and arrivals.of(None) is None   # each used once
    many = _Arrivals(clock=lambda: 0.0)
    for pts in range(1000):            # packets whose frames never came out are forgotten
        many.note(pts)
    assert len(many._at) == _Arrivals._KEEP and many.of(999) == 0.0


def test_a_camera_up_to_1080p_decodes_without_frame_threads_and_a_larger_one_with_them():
    """Frame threads hold frames back inside the decoder (two at 30 fps: 67 ms); only a frame
    too large for one thread to decode in time is worth that."""
    assert [decode_threading(w, h) for w, h in ((1280, 720), (1920, 1080), (1920, 1088), (0, 0))] == ["SLICE"] * 4
    assert [decode_threading(w, h) for w, h in ((2560, 1440), (3840, 2160))] == ["AUTO"] * 2
