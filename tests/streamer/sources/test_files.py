"""streamer.sources.files on real PyAV-encoded files: counts, timestamps, sampling, broken input."""
from __future__ import annotations

import random
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.config import SourceConfig
from streamer.sources.files import open_source
from streamer.sources.frames import Frame, NotAVideo, SourceError, SourceNotFound

W, H, N, FPS = 64, 48, 30, 25
BAR = 8


def bar_x(i: int) -> int:
    """Left edge of the white bar in frame i: a moving pattern ties content to index."""
    return (2 * i) % (W - BAR)


def encode(path: Path, codec: str, n: int = N, fps: int = FPS, fmt: str | None = None) -> Path:
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = W, H
        s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for i in range(n):
            img = np.full((H, W, 3), 20, np.uint8)
            img[:, bar_x(i):bar_x(i) + BAR] = 235
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def read_all(path, **cfg) -> tuple[list[Frame], dict, object]:
    with open_source(str(path), SourceConfig(**cfg)) as src:
        return list(src), src.stats, src


FORMATS = [("libx264", "clip.mp4"), ("mpeg4", "clip.avi"), ("mjpeg", "clip.mkv")]


@pytest.fixture(scope="module", params=FORMATS, ids=[f[1] for f in FORMATS])
def clip(request, tmp_path_factory) -> Path:
    codec, name = request.param
    return encode(tmp_path_factory.mktemp("v") / name, codec)


@pytest.fixture(scope="module")
def mkv(tmp_path_factory) -> Path:
    """A longer h264 Matroska file for damage tests (Matroska resyncs after bad bytes)."""
    return encode(tmp_path_factory.mktemp("v") / "long.mkv", "libx264", n=100)


def test_every_frame_with_exact_pts_and_content(clip):
    frames, stats, src = read_all(clip)
    assert (src.fps, src.width, src.height, src.frame_count_estimate) == (FPS, W, H, N)
    assert src.is_live is False
    assert [f.index for f in frames] == list(range(N))
    assert [f.pts for f in frames] == pytest.approx([i / FPS for i in range(N)], abs=1e-9)
    assert stats == {"decoded": N, "yielded": N, "skipped_by_sampling": 0,
                     "decode_errors": 0, "last_error": None}
    for f in frames:
        assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
        centre = int(np.argmax(f.image[..., 0].mean(axis=0)[: W - 1]))
        assert bar_x(f.index) <= centre < bar_x(f.index) + BAR


def test_every_k(clip):
    frames, stats, _ = read_all(clip, every=3)
    assert [f.index for f in frames] == list(range(0, N, 3))
    assert [f.pts for f in frames] == pytest.approx([i / FPS for i in range(0, N, 3)])
    assert stats["decoded"] == N and stats["yielded"] == 10 and stats["skipped_by_sampling"] == 20


def test_fps_resampling_follows_pts(clip):
    frames, stats, _ = read_all(clip, fps=10)
    # The first frame at or after each 0.1 s slot of a 25 fps clip.
    assert [f.index for f in frames] == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28]
    assert stats["yielded"] + stats["skipped_by_sampling"] == N


def test_fps_above_source_rate_keeps_all(clip):
    frames, _, _ = read_all(clip, fps=100)
    assert len(frames) == N


def test_every_and_fps_combine(clip):
    frames, _, _ = read_all(clip, every=2, fps=5)
    assert [f.index for f in frames] == [0, 6, 10, 16, 20, 26]


def test_file_url_and_single_pass(clip):
    with open_source(clip.resolve().as_uri(), SourceConfig()) as src:
        assert len(list(src)) == N
        assert list(src) == []


def test_raw_stream_without_timestamps_falls_back_to_index_over_fps(tmp_path):
    path = encode(tmp_path / "raw.h264", "libx264", n=12, fps=10, fmt="h264")
    frames, _, src = read_all(path)
    assert src.fps == 10 and src.frame_count_estimate is None
    assert [f.pts for f in frames] == pytest.approx([i / 10 for i in range(12)])


def test_real_video_honours_edit_list():
    """obama.mp4's edit list cuts 4.08 s of pre-roll: 55 of its 158 coded frames are shown."""
    path = Path(__file__).resolve().parents[4] / "shared/data/real/obama.mp4"
    if not path.exists():
        pytest.skip("shared sample video not present")
    frames, stats, src = read_all(path, every=5)
    assert (src.width, src.height, src.fps) == (1280, 720, 25)
    assert stats["decoded"] == src.frame_count_estimate == 55
    assert len(frames) == 11 and frames[0].pts == 0.0


def test_truncated_file_decodes_a_prefix(mkv, tmp_path):
    data = mkv.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    frames, stats, _ = read_all(cut)
    assert 0 < len(frames) < 100
    assert [f.index for f in frames] == list(range(len(frames)))
    pts = np.array([f.pts for f in frames])
    assert np.all(np.diff(pts) > 0) and np.allclose(pts * FPS, np.round(pts * FPS))
    # Only the tail may skip: the frames of the last B-frame group whose data was cut off.
    head = len(frames) - 4
    assert pts[:head] == pytest.approx(np.arange(head) / FPS)


def test_truncated_mp4_without_index_is_not_a_video(tmp_path):
    """An MP4 written without faststart keeps its index at the end: half a file has none."""
    data = encode(tmp_path / "full.mp4", "libx264", n=100).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(NotAVideo, match="cut.mp4"):
        open_source(str(cut), SourceConfig())


def _read_with_deadline(path: Path, seconds: float = 20.0):
    result: dict = {}

    def work():
        try:
            result["frames"], result["stats"], _ = read_all(path)
        except SourceError as e:
            result["error"] = e

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"decoding {path.name} hung"
    return result


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bit_flips_never_hang_nor_raise_midstream(clip, tmp_path, seed):
    data = bytearray(clip.read_bytes())
    rng = random.Random(seed)
    for _ in range(50):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    path = tmp_path / f"flipped{clip.suffix}"
    path.write_bytes(bytes(data))
    result = _read_with_deadline(path)
    if "error" in result:  # the container header itself was hit
        assert isinstance(result["error"], NotAVideo) and path.name in str(result["error"])
    else:
        stats = result["stats"]
        assert stats["yielded"] == stats["decoded"] == len(result["frames"]) > 0


def test_damaged_middle_is_counted(mkv, tmp_path):
    data = bytearray(mkv.read_bytes())
    rng = random.Random(0)
    for _ in range(50):
        data[rng.randrange(len(data) // 4, len(data))] ^= 1 << rng.randrange(8)
    path = tmp_path / "damaged.mkv"
    path.write_bytes(bytes(data))
    stats = _read_with_deadline(path)["stats"]
    assert stats["decode_errors"] > 0 or stats["decoded"] < 100
    if stats["decode_errors"]:
        assert stats["last_error"]


def test_missing_path(tmp_path):
    path = tmp_path / "nope.mp4"
    with pytest.raises(SourceNotFound, match="nope.mp4: does not exist"):
        open_source(str(path), SourceConfig())
    with pytest.raises(SourceNotFound, match="not a regular file"):
        open_source(str(tmp_path), SourceConfig())


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(NotAVideo, match="empty.mp4: file is empty"):
        open_source(str(path), SourceConfig())


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(NotAVideo, match="notes.mp4: not a readable video container"):
        open_source(str(path), SourceConfig())


@pytest.mark.parametrize("name,codec,fmt", [("tone.wav", "pcm_s16le", "s16"), ("tone.m4a", "aac", "fltp")])
def test_audio_only_is_not_a_video(tmp_path, name, codec, fmt):
    path = tmp_path / name
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=8000)
        s.layout = "mono"
        samples = (np.sin(np.arange(4096) / 5) * 0.5).astype(np.float32)[None]
        if fmt == "s16":
            samples = (samples * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format=fmt, layout="mono")
        frame.sample_rate = 8000
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)
    with pytest.raises(NotAVideo, match=f"{name}: has no video stream.*audio"):
        open_source(str(path), SourceConfig())


def test_unsupported_schemes_are_refused():
    with pytest.raises(SourceError, match="scheme 'ftp' is not allowed"):
        open_source("ftp://cam/1", SourceConfig())


def test_bad_sampling_config(clip):
    with pytest.raises(ValueError, match="every"):
        open_source(str(clip), SourceConfig(every=0))
    with pytest.raises(ValueError, match="fps"):
        open_source(str(clip), SourceConfig(fps=0))
