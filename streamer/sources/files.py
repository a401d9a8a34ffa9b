"""Video sources: decode a file or a live stream into RGB frames.

:func:`open_source` checks a URL against the source policy (:mod:`streamer.sources.urls`) and
returns a :class:`FileSource` for local files or a :class:`~streamer.sources.live.LiveSource`
for RTSP/HTTP streams; both satisfy :class:`~streamer.sources.frames.Source` (iterators of
:class:`~streamer.sources.frames.Frame`, counting in one :class:`~streamer.sources.frames.SourceStats`).
This module is about files.

Files are never dropped: the only frames left out are those the sampling options ask to
leave out (``every`` / ``fps``). Broken input is handled where it is found: a file that
cannot be opened, or that decodes to no frame at all, raises a :class:`SourceError`
subclass with a message naming the file; a file broken in the middle yields every frame
that can still be decoded and counts the rest in ``stats``, because one bad packet must
not cost the rest of a long recording.

Hostile input is bounded before FFmpeg sees it. Only regular files are opened (a named
pipe nobody writes, a device, a directory are refused without blocking), and FFmpeg reads
the one file descriptor opened here (its ``fd:`` protocol, with nothing else on the
protocol whitelist), so a playlist, concat script or manifest cannot make it open any
other file, inside the media root or out of it. Frames larger than ``max_width`` x
``max_height`` and files longer than ``max_duration_s`` are refused
(:class:`SourceTooLarge`) from what the container declares, before decoding, and again
from what the decoder produces.
"""
from __future__ import annotations

import os
import stat
import time
from typing import Callable, Generator, Iterator

import av

from streamer.config import SourceConfig
from streamer.sources.frames import (
    Frame,
    NotAVideo,
    Sampler,
    SourceError,
    SourceNotFound,
    SourceStats,
    SourceTooLarge,
    ffmpeg_reason,
)
from streamer.sources.live import LiveSource
from streamer.sources.urls import SourceKind, Transport, check_source

# Consecutive demuxer failures after which a file is treated as ended: a damaged
# container can fail at the same offset forever, and a file source must never hang.
_MAX_CONSECUTIVE_DEMUX_ERRORS = 32
# Frames past max_duration_s in a row after which decoding stops: one frame with a wild
# timestamp (a damaged packet) must not end the file, a file that goes on must.
_MAX_FRAMES_PAST_DURATION = 8
# What a file starts with when it is a list of other files for FFmpeg to open; refused
# with a message saying so (the fd: protocol would refuse their opens anyway).
_SCRIPTS = ((b"#EXTM3U", "an HLS playlist"), (b"ffconcat version", "an FFmpeg concat script"),
            (b"<?xml", "an XML manifest"), (b"<MPD", "a DASH manifest"))
_FILE_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a named pipe", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def open_source(url: str, cfg: SourceConfig, media_root: str | None = "/",
                on_event: Callable[[str, dict], None] | None = None, transport: Transport = Transport.TCP,
                *, wait: bool = True) -> FileSource | LiveSource:
    """Open ``url`` for decoding, if the source policy allows it.

    A path or ``file:`` URL inside ``media_root`` gives a :class:`FileSource` (the
    default root ``"/"`` allows every file); ``rtsp(s)://`` and ``http(s)://`` give a
    :class:`~streamer.sources.live.LiveSource`, to which ``on_event``, ``transport`` and
    ``wait`` are passed (see there). Anything else raises
    :class:`~streamer.sources.urls.SourceRefused` before anything is opened.
    """
    spec = check_source(url, media_root)
    if spec.kind == SourceKind.FILE:
        return FileSource(spec.target, cfg, av_options=spec.av_options)
    return LiveSource(spec, cfg, on_event, transport, wait=wait)


class FileSource:
    """Frames of a local video file, in decode order, sampled as ``cfg`` asks.

    Single pass: iterate once. The first frame is decoded on open so that a file that
    cannot produce any frame fails here, before a session starts, with a clear message.
    """

    def __init__(self, path: str | os.PathLike, cfg: SourceConfig,
                 av_options: dict[str, str] | None = None) -> None:
        if cfg.every < 1:
            raise ValueError(f"SourceConfig.every must be >= 1, got {cfg.every}")
        if cfg.fps is not None and cfg.fps <= 0:
            raise ValueError(f"SourceConfig.fps must be > 0 or None, got {cfg.fps}")
        if cfg.max_width < 1 or cfg.max_height < 1:
            raise ValueError(f"SourceConfig.max_width/max_height must be >= 1, got "
                             f"{cfg.max_width}x{cfg.max_height}")
        if cfg.max_duration_s is not None and not cfg.max_duration_s > 0:
            raise ValueError(f"SourceConfig.max_duration_s must be > 0 or None, got {cfg.max_duration_s}")
        self.path = str(path)
        self.cfg = cfg
        self.stats: SourceStats = {"decoded": 0, "yielded": 0, "skipped_by_sampling": 0,
                            "decode_errors": 0, "last_error": None}
        if cfg.max_duration_s is not None:
            self.stats["beyond_max_duration"] = 0
        self._first: Frame | None = None
        fd = _open_regular_file(self.path)
        try:
            head = os.pread(fd, 64, 0)
            for magic, what in _SCRIPTS:
                if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(magic):
                    raise NotAVideo(f"{self.path}: is {what}, which names other files to open; "
                                    "playlists, concat scripts and manifests are not accepted as files")
            # FFmpeg reads this descriptor and nothing else: with only fd: on the protocol
            # whitelist (nested opens inherit it), a playlist or concat script cannot open
            # another file, and the file checked above is the file read.
            options = {**(av_options or {}), "protocol_whitelist": "fd", "fd": str(fd)}
            self._container = av.open("fd:", mode="r", timeout=cfg.open_timeout_s, container_options=options,
                                      options={"max_pixels": str(self._max_pixels)}, metadata_errors="replace")
        except (av.error.FFmpegError, ValueError) as e:
            raise NotAVideo(f"{self.path}: not a readable video container ({ffmpeg_reason(e)})") from None
        finally:
            os.close(fd)  # FFmpeg holds its own duplicate
        try:
            self._check_declared()
        except SourceError:
            self._container.close()
            raise
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        # The decoder refuses frames above the pixel limit before allocating them (a
        # stream may switch to a larger size midway); they count as decode errors.
        self._stream.codec_context.options = {"max_pixels": str(self._max_pixels)}
        # The average rate is measured from timestamps, so trust it when the container has
        # them (it knows a duration); raw streams get FFmpeg's guess from the codec headers.
        stream = self._stream
        measured = stream.average_rate if self._container.duration else None
        rate = measured or stream.guessed_rate or stream.average_rate or stream.base_rate
        self.fps: float = float(rate) if rate else 0.0
        self._frames = self._decode()
        try:
            self._first = next(self._frames)
        except StopIteration:
            self.close()
            why = f"; last error: {self.stats['last_error']}" if self.stats["last_error"] else ""
            raise NotAVideo(f"{self.path}: no video frame could be decoded{why}") from None
        except BaseException:
            self.close()
            raise
        self.height, self.width = self._first.image.shape[:2]
        self.frame_count_estimate: int | None = self._estimate_frame_count()

    @property
    def is_live(self) -> bool:
        """Files apply backpressure and never drop frames; live sources will."""
        return False

    @property
    def backlog(self) -> int:
        """A file's frames wait in the file: none are ever waiting to be taken."""
        return 0

    def wait_ready(self) -> None:
        """A file is ready once opened (its first frame is decoded then)."""

    def __iter__(self) -> Iterator[Frame]:
        keep = Sampler(self.cfg)
        if self._first is None:
            return
        frames, self._first = _chain(self._first, self._frames), None
        try:
            for frame in frames:
                if keep(frame):
                    self.stats["yielded"] += 1
                    yield frame
                else:
                    self.stats["skipped_by_sampling"] += 1
        finally:
            self.close()

    def close(self) -> None:
        """Release the container; safe to call more than once."""
        self._first = None
        self._frames.close()
        self._container.close()

    def __enter__(self) -> "FileSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def _max_pixels(self) -> int:
        return self.cfg.max_width * self.cfg.max_height

    def _too_large(self, width: int, height: int) -> str | None:
        if width > self.cfg.max_width or height > self.cfg.max_height:
            return (f"{width}x{height} frames are larger than the {self.cfg.max_width}x"
                    f"{self.cfg.max_height} limit (source.max_width, source.max_height)")
        return None

    def _check_declared(self) -> None:
        """Refuse by what the container says, before a frame is decoded."""
        container = self._container
        if not container.streams.video:
            kinds = sorted({str(s.type) for s in container.streams}) or ["no streams"]
            raise NotAVideo(f"{self.path}: has no video stream (found: {', '.join(kinds)})")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None:  # FFmpeg has no decoder for it (or the codec id is damaged)
            raise NotAVideo(f"{self.path}: its video stream is in a codec that cannot be decoded here")
        why = self._too_large(ctx.width or 0, ctx.height or 0)
        if why:
            raise SourceTooLarge(f"{self.path}: {why}")
        limit = self.cfg.max_duration_s
        if limit is not None:
            duration = self._declared_duration()
            if duration is not None and duration > limit:
                raise SourceTooLarge(f"{self.path}: lasts {duration:.6g} s, longer than the {limit:g} s limit "
                                     "(source.max_duration_s)")

    def _declared_duration(self) -> float | None:
        """Seconds the video stream (else the container) says it lasts, if it says."""
        stream = self._container.streams.video[0]
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        if self._container.duration:
            return self._container.duration / av.time_base
        return None

    def _decode(self) -> Generator[Frame, None, None]:
        """Every frame that decodes, in order; bad packets are counted, not raised.

        Frames above the size limit are counted as errors (the first one refuses the
        file); frames past ``max_duration_s`` from the first are counted and left out, and
        decoding stops after a few of them in a row.
        """
        time_base = self._stream.time_base
        limit = self.cfg.max_duration_s
        origin: float | None = None
        past_limit = 0
        errors_in_a_row = 0
        while errors_in_a_row < _MAX_CONSECUTIVE_DEMUX_ERRORS:
            # demux() is restarted after a failure: it resumes at the current file position.
            packets = self._container.demux(self._stream)
            try:
                for packet in packets:
                    errors_in_a_row = 0
                    try:
                        decoded = packet.decode()
                    except av.error.FFmpegError as e:
                        self._count_error(e)
                        continue
                    for f in decoded:
                        why = self._too_large(f.width, f.height)
                        if why:
                            if self.stats["decoded"] == 0:
                                raise SourceTooLarge(f"{self.path}: {why}")
                            self._count_error(SourceTooLarge(why))
                            continue
                        index = self.stats["decoded"]
                        self.stats["decoded"] += 1
                        pts = self._pts(f, index, time_base)
                        if limit is not None:
                            origin = pts if origin is None else origin
                            if pts - origin > limit:
                                self.stats["beyond_max_duration"] += 1
                                past_limit += 1
                                if past_limit >= _MAX_FRAMES_PAST_DURATION:
                                    return
                                continue
                            past_limit = 0
                        yield Frame(index, pts, f.to_ndarray(format="rgb24"), time.time())
                return  # demux ran to EOF (its last packet flushed the decoder)
            except av.error.EOFError:
                return
            except av.error.FFmpegError as e:
                self._count_error(e)
                errors_in_a_row += 1

    def _pts(self, f: av.VideoFrame, index: int, time_base) -> float:
        """A frame's time in seconds: its pts, else its place at the nominal rate."""
        if f.pts is not None and time_base is not None:
            return float(f.pts * time_base)
        return index / self.fps if self.fps else 0.0

    def _count_error(self, e: Exception) -> None:
        self.stats["decode_errors"] += 1
        self.stats["last_error"] = ffmpeg_reason(e)

    def _estimate_frame_count(self) -> int | None:
        """Frames the file will decode to, for a progress bar.

        Duration times rate comes first: the container's frame count includes frames an
        MP4 edit list cuts off (the decoder drops them), duration does not.
        """
        duration = None
        if self._stream.duration and self._stream.time_base:
            duration = float(self._stream.duration * self._stream.time_base)
        elif self._container.duration:
            duration = self._container.duration / av.time_base
        if duration and self.fps:
            return max(1, round(duration * self.fps))
        return int(self._stream.frames) or None


def _open_regular_file(path: str) -> int:
    """A read-only descriptor of ``path`` once it is known to be a non-empty regular file.

    The type is checked before opening (opening a device can have effects of its own) and
    again on the open descriptor (the path may have been replaced in between); the open
    does not block, whatever the path has become.
    """
    def refuse(st: os.stat_result) -> None:
        if not stat.S_ISREG(st.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(st.st_mode), "a special file")
            raise SourceNotFound(f"{path}: is not a regular file (it is {kind})")
        if st.st_size == 0:
            raise NotAVideo(f"{path}: file is empty (0 bytes)")

    try:
        refuse(os.stat(path))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise SourceNotFound(f"{path}: does not exist") from None
    except PermissionError:
        raise SourceNotFound(f"{path}: cannot be read (permission denied)") from None
    except OSError as e:  # a symlink loop, a name too long, a file in place of a directory
        raise SourceNotFound(f"{path}: cannot be opened ({e.strerror or type(e).__name__})") from None
    try:
        refuse(os.fstat(fd))
    except SourceError:
        os.close(fd)
        raise
    return fd


def _chain(first: Frame, rest: Iterator[Frame]) -> Iterator[Frame]:
    yield first
    yield from rest
