"""Corrupt and hostile video files: every one is refused with a clear error or decoded,
none crashes, none hangs (docs/reliability.md, "Bad input").

The cases and the child-process runner live in ``hostile_media`` (shared with
``bench/hostile_inputs.py``, which prints the table in docs/reliability.md). Each case is
opened with ``open_source`` and read to the end in a child process with a hard timeout,
so a hang or a crash in FFmpeg is reported as such instead of stopping the test run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from streamer.config import SourceConfig
from streamer.sources import files as source
from streamer.sources.files import open_source
from streamer.sources.frames import NotAVideo, SourceError, SourceTooLarge
from testsupport import hostile_media as hm

REPO = Path(__file__).resolve().parents[3]
CASE_TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict[str, hm.Prepared]:
    return hm.build(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def runner():
    with hm.Runner(CASE_TIMEOUT_S) as r:
        yield r


def test_there_are_enough_hostile_files():
    files = [c for c in hm.CASES if c.category != "playlists and escapes" or c.names_file]
    assert len(files) >= 50 and len({c.id for c in hm.CASES}) == len(hm.CASES)


@pytest.mark.parametrize("case", hm.CASES, ids=[c.id for c in hm.CASES])
def test_hostile_input_is_refused_clearly_or_decoded(prepared, runner, case):
    if case.skip_if_root and os.geteuid() == 0:
        pytest.skip("running as root: permissions do not stop root from reading")
    p = prepared[case.id]
    result = runner.run(p)
    assert not hm.problems(p, result), hm.problems(p, result)
    assert result["seconds"] < CASE_TIMEOUT_S


def test_the_runner_reports_hangs_and_crashes(prepared):
    """The harness itself: a child that never answers is a hang, one that dies is a crash."""
    p = prepared["missing-file"]
    t0 = time.monotonic()
    with hm.Runner(1.5, work="hang") as r:
        assert r.run(p)["outcome"] == "hang"
    assert time.monotonic() - t0 < 15
    with hm.Runner(10, work="crash") as r:
        result = r.run(p)
    assert result["outcome"] == "crash" and result["exitcode"] < 0


def test_frames_past_max_duration_are_counted_and_reading_stops(tmp_path):
    path = hm.encode(tmp_path / "long.h264", "libx264", "h264", frames=200)
    with open_source(str(path), SourceConfig(max_duration_s=1.0)) as src:
        frames = list(src)
    assert [f.index for f in frames] == list(range(26))       # pts 0.00 .. 1.00 s
    assert frames[-1].pts == pytest.approx(1.0)
    assert src.stats["beyond_max_duration"] == source._MAX_FRAMES_PAST_DURATION
    assert src.stats["decoded"] == 26 + source._MAX_FRAMES_PAST_DURATION   # not all 200


def test_a_frame_above_the_limit_midway_is_a_counted_error(tmp_path):
    small = hm.encode(tmp_path / "a.h264", "libx264", "h264", frames=20).read_bytes()
    wide = hm.encode(tmp_path / "b.h264", "libx264", "h264", frames=10, w=8192, h=64).read_bytes()
    (tmp_path / "switch.h264").write_bytes(small + wide)
    with open_source(str(tmp_path / "switch.h264"), SourceConfig()) as src:
        frames = list(src)
    assert len(frames) == 20 and all(f.image.shape == (hm.H, hm.W, 3) for f in frames)
    assert src.stats["decode_errors"] >= 1 and "limit" in src.stats["last_error"]
    # the other way round, the first frame is too large: refused at open
    (tmp_path / "wide-first.h264").write_bytes(wide + small)
    with pytest.raises(SourceTooLarge, match="wide-first.h264: 8192x64 frames are larger than the 7680x4320"):
        open_source(str(tmp_path / "wide-first.h264"), SourceConfig())


def test_limits_must_make_sense(tmp_path):
    path = hm.encode(tmp_path / "ok.mkv", "libx264", "matroska", frames=5)
    for bad in ({"max_width": 0}, {"max_height": -1}, {"max_duration_s": 0}, {"max_duration_s": -5.0}):
        with pytest.raises(ValueError, match="max_"):
            open_source(str(path), SourceConfig(**bad))


def test_ffmpeg_cannot_open_other_files_even_past_the_sniff(tmp_path, monkeypatch):
    """Defence in depth: a concat script naming a 'safe' relative file that is a symlink
    out of the media root. FFmpeg on its own follows it; through FileSource, with the
    first-bytes check switched off, its only protocol is the one descriptor, so it cannot."""
    media, outside = tmp_path / "media", tmp_path / "outside"
    media.mkdir()
    outside.mkdir()
    secret = hm.encode(outside / "secret.ts", "libx264", "mpegts", frames=5)
    (media / "inside.ts").symlink_to(secret)
    script = media / "list.ffconcat"
    script.write_text("ffconcat version 1.0\nfile inside.ts\n")
    with av.open(str(script), container_options={"protocol_whitelist": "file"}) as c:
        assert c.format.name == "concat" and sum(1 for _ in c.decode(video=0)) == 5  # the hole
    monkeypatch.setattr(source, "_SCRIPTS", ())
    with pytest.raises(NotAVideo, match="list.ffconcat: not a readable video container"):
        open_source(str(script), SourceConfig(), media_root=str(media))


def test_live_stream_above_the_size_limit_fails_at_once(tmp_path):
    from streamer.testbed import HttpTsServer

    clip = hm.encode(tmp_path / "live.mp4", "libx264", "mp4", frames=25)
    with HttpTsServer(clip) as server:
        t0 = time.monotonic()
        with pytest.raises(SourceError, match=r"64x48 frames are larger than the 32x4320 limit"):
            open_source(server.url, SourceConfig(max_width=32, give_up_s=30, reconnect_s=0.2), media_root=None)
        assert time.monotonic() - t0 < 10  # not retried until give_up_s


CLI_CASES = [  # (case id, exit status, what stderr says)
    ("truncated-zero-bytes", 4, "file is empty"),
    ("text-named-mp4", 4, "not a readable video container"),
    ("fifo-nobody-writes", 3, "is not a regular file (it is a named pipe)"),
    ("directory", 3, "is not a regular file (it is a directory)"),
    ("huge-8192x64-h264", 4, "8192x64 frames are larger than the 7680x4320 limit"),
    ("hls-playlist-to-outside", 4, "is an HLS playlist"),
]


def test_cli_refuses_hostile_files_with_one_line(prepared, tmp_path):
    """`facestream analyze` on hostile files: the pre-flight check refuses each before Ray
    starts, with its exit status and one line on stderr. All at once: each is mostly
    Python imports, and a loaded machine shares its CPUs per process."""
    def start(case_id: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "streamer.cli", "analyze", prepared[case_id].url,
                                 "--out", str(tmp_path / case_id)], cwd=REPO, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    running = {case_id: start(case_id) for case_id, _, _ in CLI_CASES}
    results = {}
    for case_id, proc in running.items():
        out, err = proc.communicate(timeout=120)
        results[case_id] = (proc.returncode, out, err)
    for case_id, status, says in CLI_CASES:
        code, out, err = results[case_id]
        lines = err.strip().splitlines()
        assert code == status, (case_id, code, err)
        assert len(lines) == 1 and lines[0].startswith("facestream: error: ") and says in lines[0], (case_id, err)
        assert "Traceback" not in err + out
