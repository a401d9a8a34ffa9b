"""Corrupt and hostile inputs for the file source, and a runner that survives them.

Shared by ``tests/streamer/sources/test_hostile_videos.py`` (one test per case) and
``bench/hostile_inputs.py`` (the table in docs/reliability.md), so both count the same
cases:

- :data:`CASES` is the static list of cases (id, category, what should happen);
  :func:`build` writes every case's file into a directory, from small clips encoded here
  with PyAV, and returns what to open for each.
- :class:`Runner` opens each case with ``open_source`` and reads every frame in a child
  process with a hard timeout, so a hang is reported as a hang (the child is killed and
  replaced) and a crash (a signal) as a crash, instead of taking the caller down with it.
- :func:`problems` says what, if anything, is wrong with a result: a refusal must be a
  ``SourceError`` whose one-line message names the file and says why (no FFmpeg errno
  soup); a decoded file must have produced frames with consistent counts.
"""
from __future__ import annotations

import io
import multiprocessing
import os
import random
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

W, H, FPS, FRAMES = 64, 48, 25, 50          # the base clips: 2 s of a moving bar
BASES = {                                    # name -> (codec, container format)
    "h264.mp4": ("libx264", "mp4"),
    "h264.mkv": ("libx264", "matroska"),
    "mpeg4.avi": ("mpeg4", "avi"),
    "h264.ts": ("libx264", "mpegts"),
    "mjpeg.mkv": ("mjpeg", "matroska"),
}
# Signs of an error message that leaks FFmpeg or Python internals instead of saying why.
_SOUP = re.compile(r"\[Errno|Traceback|avcodec_|avformat_|'fd:'|returned -?\d+|<av\.|0x[0-9a-f]{6,}")


@dataclass(frozen=True)
class Case:
    """One hostile input and what must happen to it.

    ``expect``: ``"refused"`` (a ``SourceError``, of class ``error`` when given, whose
    message matches ``match``), ``"decoded"`` (frames come out; at least ``min_frames``,
    at most ``max_frames``), or ``"either"`` (damage whose outcome depends on where it
    hit: both are fine, anything else is not).
    """

    id: str
    category: str
    make: Callable[["Workspace"], str] = field(repr=False, compare=False)
    expect: str = "either"
    error: str | None = None
    match: str | None = None
    config: dict = field(default_factory=dict, compare=False)
    media_root: str | None = "/"                # None: the workspace's media root
    names_file: bool = True                    # the message must name the file
    min_frames: int = 1
    max_frames: int | None = None
    skip_if_root: bool = False


@dataclass(frozen=True)
class Prepared:
    """What to open for a case: ``url`` with ``config`` under ``media_root``."""

    case: Case
    url: str
    names: tuple[str, ...]   # the message must mention one: the name given, or resolved
    media_root: str | None


class Workspace:
    """The directory cases are written to, with the base clips and a media root."""

    def __init__(self, root: Path):
        self.dir = root / "files"
        self.media = root / "media"            # for the cases that need a media root
        self.outside = root / "outside"        # files the media root must not reach
        for d in (self.dir, self.media, self.outside):
            d.mkdir(parents=True, exist_ok=True)
        self.base = {name: encode(self.dir / f"base-{name}", codec, fmt) for name, (codec, fmt) in BASES.items()}
        self.secret = encode(self.outside / "secret.ts", "libx264", "mpegts")

    def mjpeg_avi(self) -> bytes:
        """5 frames of MJPEG in AVI (the clip whose headers the size cases rewrite)."""
        path = self.dir / "base-mjpeg5.avi"
        if not path.exists():
            encode(path, "mjpeg", "avi", 5)
        return path.read_bytes()

    def write(self, name: str, data: bytes, where: Path | None = None) -> str:
        path = (where or self.dir) / name
        path.write_bytes(data)
        return str(path)

    def data(self, base: str) -> bytes:
        return self.base[base].read_bytes()


# ---- encoding ----------------------------------------------------------------------------

def _bar(i: int, w: int = W, h: int = H):
    import numpy as np

    image = np.full((h, w, 3), 30, np.uint8)
    x = (3 * i) % max(w - 8, 1)
    image[:, x:x + 8] = 230
    return image


def encode(path: Path, codec: str, fmt: str | None, frames: int = FRAMES, w: int = W, h: int = H,
           streams: int = 1) -> Path:
    """A clip of ``frames`` frames at FPS (``streams`` identical video streams)."""
    import av

    with av.open(str(path), "w", format=fmt) as c:
        out = []
        for _ in range(streams):
            s = c.add_stream(codec, rate=FPS)
            s.width, s.height = w, h
            s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
            if codec == "libx264":
                s.options = {"preset": "ultrafast", "g": "10"}
            elif codec == "mpeg4":
                s.gop_size = 10
            out.append(s)
        for i in range(frames):
            image = _bar(i, w, h)
            for s in out:
                for p in s.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    c.mux(p)
        for s in out:
            for p in s.encode():
                c.mux(p)
    return path


def encode_audio(path: Path, codec: str, fmt: str | None) -> Path:
    """A second of a tone, no video at all."""
    import av
    import numpy as np

    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=44100 if codec == "mp2" else 8000)
        s.layout = "mono"
        rate = s.rate
        t = np.arange(rate) / rate
        tone = (np.sin(2 * np.pi * 440 * t) * 0.3).astype(np.float32)
        sample_fmt = s.format.name
        chunk = s.frame_size or 1024
        for start in range(0, rate, chunk):
            piece = tone[start:start + chunk]
            if len(piece) < chunk:
                break
            data = (piece * 32767).astype(np.int16)[None] if sample_fmt.startswith("s16") else piece[None]
            frame = av.AudioFrame.from_ndarray(data, format=sample_fmt, layout="mono")
            frame.sample_rate = rate
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def image_bytes(codec: str) -> bytes:
    """One 64x48 image: a PNG file (``png``) or a JPEG file (``mjpeg``)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="image2pipe") as c:
        s = c.add_stream(codec, rate=1)
        s.width, s.height = W, H
        s.pix_fmt = "rgb24" if codec == "png" else "yuvj420p"
        for p in [*s.encode(av.VideoFrame.from_ndarray(_bar(0), format="rgb24")), *s.encode()]:
            c.mux(p)
    return buf.getvalue()


# ---- damage ------------------------------------------------------------------------------

def truncated(data: bytes, where: float | int) -> bytes:
    """The first ``where`` bytes (an int) or that fraction of the file (a float)."""
    n = where if isinstance(where, int) else int(len(data) * where)
    return data[:n] if n >= 0 else data[:len(data) + n]


def flipped(data: bytes, seed: int, flips: int = 30, span: tuple[float, float] = (0.0, 1.0)) -> bytes:
    """``flips`` single-bit flips at random places within ``span`` (fractions of the file)."""
    out, rng = bytearray(data), random.Random(seed)
    lo, hi = int(len(data) * span[0]), max(int(len(data) * span[1]), 1)
    for _ in range(flips):
        out[rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)
    return bytes(out)


def overwritten(data: bytes, start: float, length: float, fill: bytes | None = None, seed: int = 0) -> bytes:
    """A region (fractions of the file) replaced by ``fill`` repeated, or random bytes."""
    out = bytearray(data)
    a, n = int(len(data) * start), max(int(len(data) * length), 1)
    out[a:a + n] = (fill * n)[:n] if fill is not None else random.Random(seed).randbytes(n)
    return bytes(out)


def patch_avi_size(data: bytes, width: int, height: int) -> bytes:
    """Declare another frame size in an AVI's main header and its video format header."""
    out = bytearray(data)
    avih = out.find(b"avih")
    out[avih + 8 + 32:avih + 8 + 40] = width.to_bytes(4, "little") + height.to_bytes(4, "little")
    strf = out.find(b"strf")
    out[strf + 8 + 4:strf + 8 + 12] = width.to_bytes(4, "little") + height.to_bytes(4, "little")
    return bytes(out)


def patch_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the frame size in every JPEG start-of-frame (SOF0) header."""
    out, i = bytearray(data), 0
    while (i := out.find(b"\xff\xc0", i)) >= 0:
        out[i + 5:i + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
        i += 2
    return bytes(out)


# ---- the cases ---------------------------------------------------------------------------

def _damaged_cases(add: Callable[[Case], None]) -> None:
    """Truncated, flipped and overwritten copies of good files."""
    short = {name: name.replace(".", "-") for name in BASES}

    # truncated: empty, a 64-byte header stub, fractions, all but the last byte
    add(Case("truncated-zero-bytes", "truncated", lambda w: w.write("empty.mp4", b""),
             "refused", "NotAVideo", "file is empty"))
    for base in BASES:
        for cut, label in ((64, "64B"), (0.1, "10pc"), (0.5, "50pc"), (0.9, "90pc"), (-1, "minus1B")):
            add(Case(f"truncated-{short[base]}-{label}", "truncated",
                     lambda w, base=base, cut=cut, label=label:
                     w.write(f"cut-{label}-{base}", truncated(w.data(base), cut))))

    # bit flips anywhere (two seeds per format), and in the header only
    for base in BASES:
        for seed in (1, 2):
            add(Case(f"bitflip-{short[base]}-seed{seed}", "bit flips",
                     lambda w, base=base, seed=seed: w.write(f"flip{seed}-{base}", flipped(w.data(base), seed))))
        add(Case(f"bitflip-{short[base]}-header", "bit flips",
                 lambda w, base=base: w.write(f"flip-head-{base}", flipped(w.data(base), 3, 8, (0.0, 0.05)))))

    # regions of garbage: zeroed quarter in the middle, random bytes over a tenth
    for base in BASES:
        add(Case(f"zeroed-{short[base]}", "garbage",
                 lambda w, base=base: w.write(f"zeroed-{base}", overwritten(w.data(base), 0.4, 0.25, b"\0"))))
    for base in ("h264.mp4", "h264.ts"):
        add(Case(f"random-block-{short[base]}", "garbage",
                 lambda w, base=base: w.write(f"noise-{base}", overwritten(w.data(base), 0.3, 0.1, seed=7))))
    add(Case("random-bytes-file", "garbage", lambda w: w.write("random.mp4", random.Random(1).randbytes(65536)),
             "refused", "NotAVideo", "not a readable video container|no video frame"))
    add(Case("ff-bytes-file", "garbage", lambda w: w.write("ones.mkv", b"\xff" * 10000),
             "refused", "NotAVideo"))


def _not_a_video_cases(add: Callable[[Case], None]) -> None:
    """Files that hold something other than a video."""
    # not a video: text, images, audio; a valid video with the wrong extension
    add(Case("text-named-mp4", "not a video", lambda w: w.write("notes.mp4", b"this is not a video\n" * 40),
             "refused", "NotAVideo", "not a readable video container"))
    # A still image is a one-frame video to FFmpeg: harmless, and what it is.
    add(Case("png-named-mp4", "not a video", lambda w: w.write("picture.mp4", image_bytes("png")),
             "decoded", max_frames=1))
    add(Case("jpeg-named-mp4", "not a video", lambda w: w.write("photo.mp4", image_bytes("mjpeg")),
             "decoded", max_frames=1))
    add(Case("audio-aac-m4a", "not a video", lambda w: str(encode_audio(w.dir / "tone.m4a", "aac", "mp4")),
             "refused", "NotAVideo", "has no video stream.*audio"))
    add(Case("audio-mp2-named-mp4", "not a video",
             lambda w: str(encode_audio(w.dir / "tone-mp2.mp4", "mp2", "mpegts")),
             "refused", "NotAVideo", "has no video stream.*audio"))
    add(Case("audio-wav", "not a video", lambda w: str(encode_audio(w.dir / "tone.wav", "pcm_s16le", "wav")),
             "refused", "NotAVideo", "has no video stream.*audio"))
    add(Case("video-named-txt", "not a video", lambda w: w.write("clip.txt", w.data("h264.mp4")),
             "decoded", min_frames=FRAMES, max_frames=FRAMES))
    add(Case("video-named-jpg", "not a video", lambda w: w.write("clip.jpg", w.data("h264.mkv")),
             "decoded", min_frames=FRAMES, max_frames=FRAMES))


def _limit_cases(add: Callable[[Case], None]) -> None:
    """Frame size, duration and stream count limits."""
    # limits: frame size and duration
    too_big = "larger than the .* limit"
    add(Case("huge-8192x64-h264", "limits", lambda w: str(encode(w.dir / "wide.mp4", "libx264", "mp4", 3, 8192, 64)),
             "refused", "SourceTooLarge", "8192x64 frames are " + too_big))
    add(Case("huge-64x4400-mjpeg", "limits", lambda w: str(encode(w.dir / "tall.avi", "mjpeg", "avi", 2, 64, 4400)),
             "refused", "SourceTooLarge", "64x4400 frames are " + too_big))
    # The AVI headers say 60000x60000, the JPEG frames 64x48: FFmpeg (and the limit)
    # go by the frames, which are what gets decoded and allocated.
    add(Case("avi-header-claims-60000x60000", "limits",
             lambda w: w.write("declared-huge.avi", patch_avi_size(w.mjpeg_avi(), 60000, 60000)),
             "decoded", min_frames=5, max_frames=5))
    # JPEG frames whose own headers claim 16000x16000 (256 Mpixel) with 64x48 worth of data.
    add(Case("jpeg-frames-claim-16000x16000", "limits",
             lambda w: w.write("sof-huge.avi", patch_jpeg_size(w.mjpeg_avi(), 16000, 16000)),
             "refused", "NotAVideo|SourceTooLarge"))
    add(Case("over-small-size-limit", "limits", lambda w: str(w.base["h264.mkv"]),
             "refused", "SourceTooLarge", "64x48 frames are larger than the 32x32 limit",
             config={"max_width": 32, "max_height": 32}))
    add(Case("size-switch-midway", "limits",   # 64x48, then 8192x64 frames in one raw stream
             lambda w: w.write("switch.h264",
                               encode(w.dir / "part1.h264", "libx264", "h264", 20).read_bytes()
                               + encode(w.dir / "part2.h264", "libx264", "h264", 10, 8192, 64).read_bytes()),
             "decoded", min_frames=20, max_frames=20))
    add(Case("longer-than-max-duration", "limits", lambda w: str(w.base["h264.mp4"]),
             "refused", "SourceTooLarge", r"lasts 2 s, longer than the 1 s limit", config={"max_duration_s": 1.0}))
    # A raw stream declares no duration: it is read up to the limit (1 s: frames 0..25).
    add(Case("raw-stream-past-max-duration", "limits",
             lambda w: str(encode(w.dir / "long.h264", "libx264", "h264", 200)),
             "decoded", min_frames=26, max_frames=26, config={"max_duration_s": 1.0}))
    add(Case("many-video-streams", "limits",
             lambda w: str(encode(w.dir / "streams32.mkv", "mjpeg", "matroska", 10, streams=32)),
             "decoded", min_frames=10, max_frames=10))


def _special_file_cases(add: Callable[[Case], None]) -> None:
    """Paths that are not regular files, or odd names."""
    # things that are not regular files, or never end
    def fifo(w: Workspace) -> str:
        path = w.dir / "pipe.mp4"
        os.mkfifo(path)
        return str(path)

    def link(name: str, target: str) -> Callable[[Workspace], str]:
        def make(w: Workspace) -> str:
            path = w.dir / name
            path.symlink_to(target)
            return str(path)
        return make

    def loop(w: Workspace) -> str:
        (w.dir / "loop-a.mp4").symlink_to(w.dir / "loop-b.mp4")
        (w.dir / "loop-b.mp4").symlink_to(w.dir / "loop-a.mp4")
        return str(w.dir / "loop-a.mp4")

    def unreadable(w: Workspace) -> str:
        path = w.write("locked.mp4", w.data("h264.mp4"))
        os.chmod(path, 0)
        return path

    def directory(w: Workspace) -> str:
        (w.dir / "folder.mp4").mkdir()
        return str(w.dir / "folder.mp4")

    not_regular = "is not a regular file"
    add(Case("fifo-nobody-writes", "special files", fifo, "refused", "SourceNotFound", not_regular + ".*named pipe"))
    add(Case("dev-zero-symlink", "special files", link("zero.mp4", "/dev/zero"),
             "refused", "SourceNotFound", not_regular + ".*character device"))
    add(Case("dev-urandom-symlink", "special files", link("urandom.ts", "/dev/urandom"),
             "refused", "SourceNotFound", not_regular))
    add(Case("directory", "special files", directory, "refused", "SourceNotFound", not_regular + ".*directory"))
    add(Case("symlink-loop", "special files", loop, "refused", "SourceNotFound", "symbolic links|does not exist"))
    add(Case("dangling-symlink", "special files", link("dangling.mp4", "/nonexistent/x.mp4"),
             "refused", "SourceNotFound", "does not exist"))
    add(Case("missing-file", "special files", lambda w: str(w.dir / "never-written.mp4"),
             "refused", "SourceNotFound", "does not exist"))
    add(Case("no-read-permission", "special files", unreadable, "refused", "SourceNotFound", "permission denied",
             skip_if_root=True))
    add(Case("unicode-and-spaces-name", "special files",
             lambda w: w.write("vidéo d'été — 测试 clip #1.mkv", w.data("h264.mkv")),
             "decoded", min_frames=FRAMES, max_frames=FRAMES))
    add(Case("leading-dash-name", "special files", lambda w: w.write("-i clip.mp4", w.data("h264.mp4")),
             "decoded", min_frames=FRAMES, max_frames=FRAMES))


def _escape_cases(add: Callable[[Case], None]) -> None:
    """Playlists, links and protocols that lead out of the media root."""
    # files that name other files, and ways out of a media root (media_root=None: the
    # workspace's media root; the secret lies outside it)
    def in_media(name: str, text: Callable[[Workspace], str]) -> Callable[[Workspace], str]:
        return lambda w: w.write(name, text(w).encode(), w.media)

    hls = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n{}\n#EXT-X-ENDLIST\n"
    add(Case("hls-playlist-to-outside", "playlists and escapes",
             in_media("list.m3u8", lambda w: hls.format(w.secret)),
             "refused", "NotAVideo", "HLS playlist", media_root=None))
    add(Case("hls-playlist-relative-escape", "playlists and escapes",
             in_media("rel.m3u8", lambda w: hls.format("../outside/secret.ts")),
             "refused", "NotAVideo", "HLS playlist", media_root=None))
    add(Case("hls-playlist-named-mp4", "playlists and escapes",
             in_media("innocent.mp4", lambda w: "\ufeff" + hls.format(f"file:{w.secret}")),
             "refused", "NotAVideo", "HLS playlist", media_root=None))
    add(Case("concat-script-absolute", "playlists and escapes",
             in_media("cat.ffconcat", lambda w: f"ffconcat version 1.0\nfile {w.secret}\n"),
             "refused", "NotAVideo", "concat script", media_root=None))
    add(Case("concat-script-relative", "playlists and escapes",
             in_media("cat.txt", lambda w: "ffconcat version 1.0\nfile ../outside/secret.ts\n"),
             "refused", "NotAVideo", "concat script", media_root=None))
    add(Case("dash-manifest", "playlists and escapes",
             in_media("live.mpd", lambda w: '<?xml version="1.0"?>\n<MPD><Period><AdaptationSet>'
                                            f'<Representation><BaseURL>file:{w.secret}</BaseURL>'
                                            '</Representation></AdaptationSet></Period></MPD>\n'),
             "refused", "NotAVideo", "XML manifest", media_root=None))
    # An HLS playlist without its magic first line must still not reach the secret.
    add(Case("hls-without-magic-line", "playlists and escapes",
             in_media("sneaky.m3u8", lambda w: "\n" * 70 + hls.format(w.secret)),
             "refused", "NotAVideo", media_root=None))

    def escape_link(w: Workspace) -> str:
        (w.media / "escape.ts").symlink_to(w.secret)
        return str(w.media / "escape.ts")

    outside = "outside the media root"
    add(Case("symlink-out-of-media-root", "playlists and escapes", escape_link,
             "refused", "SourceRefused", outside, media_root=None))
    add(Case("dotdot-out-of-media-root", "playlists and escapes",
             lambda w: str(w.media / ".." / "outside" / "secret.ts"),
             "refused", "SourceRefused", outside, media_root=None))
    add(Case("file-url-out-of-media-root", "playlists and escapes", lambda w: w.secret.as_uri(),
             "refused", "SourceRefused", outside, media_root=None))
    for proto, url in (("concat", "concat:{m}/a.ts|{s}"), ("subfile", "subfile,,start,0,end,0,,:{s}"),
                       ("data", "data:video/mp2t;base64,R0lG"), ("pipe", "pipe:0"), ("fd", "fd:0"),
                       ("async", "async:file:{s}"), ("cache", "cache:{s}")):
        add(Case(f"protocol-{proto}", "playlists and escapes",
                 lambda w, url=url: url.format(m=w.media, s=w.secret),
                 "refused", "SourceRefused", "refused", media_root=None, names_file=False))


def _cases() -> list[Case]:
    cases: list[Case] = []
    for section in (_damaged_cases, _not_a_video_cases, _limit_cases, _special_file_cases, _escape_cases):
        section(cases.append)
    return cases


CASES: list[Case] = _cases()


def build(root: Path) -> dict[str, Prepared]:
    """Write every case's input under ``root``; {case id: what to open}."""
    w = Workspace(Path(root))
    prepared = {}
    for case in CASES:
        url = case.make(w)
        names = (Path(url).name, Path(os.path.realpath(url)).name) if case.names_file else (url,)
        prepared[case.id] = Prepared(case, url, names, str(w.media) if case.media_root is None else case.media_root)
    return prepared


# ---- running a case in a child process -----------------------------------------------

def probe(url: str, config: dict, media_root: str | None) -> dict:
    """Open ``url`` and read every frame; what happened, in plain data."""
    from streamer.config import SourceConfig
    from streamer.sources.files import open_source
    from streamer.sources.frames import SourceError

    t0 = time.monotonic()
    try:
        src = open_source(url, SourceConfig(**config), media_root=media_root)
        with src:
            size = [src.width, src.height]
            frames = sizes = 0
            for frame in src:
                frames += 1
                sizes += frame.image.shape[:2] != (size[1], size[0])
            return {"outcome": "decoded", "frames": frames, "stats": dict(src.stats), "size": size,
                    "other_sizes": sizes, "seconds": time.monotonic() - t0}
    except SourceError as e:
        return {"outcome": "refused", "error": type(e).__name__,
                "classes": [c.__name__ for c in type(e).__mro__], "message": str(e),
                "seconds": time.monotonic() - t0}
    except Exception as e:
        return {"outcome": "exception", "error": type(e).__name__, "message": str(e),
                "traceback": traceback.format_exc(), "seconds": time.monotonic() - t0}


def _hang(url: str, config: dict, media_root: str | None) -> dict:
    """Stand-in for probe that never returns (checks the runner's timeout)."""
    while True:
        time.sleep(1)


def _crash(url: str, config: dict, media_root: str | None) -> dict:
    """Stand-in for probe that dies of a signal, as a crash in FFmpeg would."""
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)
    return {}


_WORK = {"probe": probe, "hang": _hang, "crash": _crash}


def _serve(conn, work: str) -> None:
    """The child's loop: a case in, its result out, until told to stop."""
    fn = _WORK[work]
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        conn.send(fn(*job))


class Runner:
    """Runs cases one at a time in a reused child process with a hard timeout.

    A case that outlasts ``timeout_s`` is a hang: the child is killed and a fresh one
    started for the next case. A child that dies (a signal, an abort) is a crash.
    """

    def __init__(self, timeout_s: float = 20.0, work: str = "probe"):
        self.timeout_s = timeout_s
        self.work = work  # "hang" and "crash" test the runner itself
        self._ctx = multiprocessing.get_context("spawn")
        self._proc = None
        self._conn = None

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_serve, args=(child, self.work), daemon=True, name="hostile-input")
        self._proc.start()
        child.close()
        self._conn = parent

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(10)
            self._conn.close()
        self._proc = self._conn = None

    def run(self, prepared: Prepared) -> dict:
        if self._proc is None or not self._proc.is_alive():
            self._kill()
            self._start()
        t0 = time.monotonic()
        self._conn.send((prepared.url, prepared.case.config, prepared.media_root))
        try:
            ready = self._conn.poll(self.timeout_s)
            if not ready:
                self._kill()
                return {"outcome": "hang", "seconds": time.monotonic() - t0,
                        "message": f"no answer within {self.timeout_s:g} s"}
            result = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(5)
            code = self._proc.exitcode
            self._kill()
            return {"outcome": "crash", "exitcode": code, "seconds": time.monotonic() - t0,
                    "message": f"child died (exit code {code})"}
        result["wall_seconds"] = time.monotonic() - t0
        return result

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(5)
            except OSError:
                pass
        self._kill()

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- judging a result --------------------------------------------------------------------

def problems(prepared: Prepared, result: dict) -> list[str]:
    """What is wrong with ``result`` for its case; empty when all is well."""
    case = prepared.case
    outcome = result["outcome"]
    if outcome in ("hang", "crash", "exception"):
        return [f"{outcome}: {result.get('error', '')} {result.get('message', '')}\n{result.get('traceback', '')}"]
    found = []
    if case.expect != "either" and outcome != case.expect:
        found.append(f"expected {case.expect}, got {outcome}: {result.get('message') or result}")
        return found
    if outcome == "refused":
        return _refusal_problems(prepared, result)
    return _decoding_problems(case, result)


def _refusal_problems(prepared: Prepared, result: dict) -> list[str]:
    case, message, found = prepared.case, result["message"], []
    if case.error and not set(case.error.split("|")) & set(result["classes"]):
        found.append(f"expected {case.error}, got {result['error']}: {message}")
    if case.match and not re.search(case.match, message):
        found.append(f"message does not say {case.match!r}: {message}")
    if case.names_file and not any(name in message for name in prepared.names):
        found.append(f"message does not name {prepared.names[0]!r}: {message}")
    if "\n" in message or _SOUP.search(message):
        found.append(f"message is not one clear line: {message!r}")
    why = message.split(": ", 1)[-1] if case.names_file else message
    if len(why) < 8:
        found.append(f"message does not say why: {message!r}")
    return found


def _decoding_problems(case: Case, result: dict) -> list[str]:
    frames, stats, found = result["frames"], result["stats"], []
    if frames < case.min_frames:
        found.append(f"only {frames} frames decoded (expected at least {case.min_frames})")
    if case.max_frames is not None and frames > case.max_frames:
        found.append(f"{frames} frames decoded (expected at most {case.max_frames})")
    if stats["yielded"] != frames or stats["decoded"] < frames:
        found.append(f"counts disagree with {frames} frames: {stats}")
    if result["other_sizes"] and case.id == "size-switch-midway":
        found.append(f"{result['other_sizes']} frames of another size were yielded")
    return found
