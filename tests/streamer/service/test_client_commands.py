"""The client commands as a user runs them: `facestream submit / streams / tail / stop`."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _facestream(service, token, *args, timeout=120) -> subprocess.CompletedProcess:
    env = {**os.environ, "FACESTREAM_SERVER": service.base, "FACESTREAM_API_TOKEN": token}
    return subprocess.run([sys.executable, "-m", "streamer.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def test_submit_streams_tail_stop(service, token, face_video, tmp_path):
    sub = _facestream(service, token, "submit", face_video.path.name, "--name", "cli-file")
    assert sub.returncode == 0, sub.stderr
    assert sub.stdout.strip() == "cli-file" and "facestream tail cli-file" in sub.stderr
    service.wait("cli-file", lambda s: s["state"] == "ended", what="ended")

    listed = _facestream(service, token, "streams", "--json")
    assert listed.returncode == 0, listed.stderr
    mine = [s for s in json.loads(listed.stdout) if s["id"] == "cli-file"]
    assert mine[0]["frames"] == face_video.frames
    # as a table under a header row; the server named host:port, without a scheme
    table = _facestream(service, token, "streams", "--server", service.base.removeprefix("http://"))
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "FRAMES", "FACES", "FPS", "LAG", "DROPPED", "RECONNECTS", "URL"]
    row = next(r.split() for r in rows if r.startswith("cli-file "))
    assert row[:4] == ["cli-file", "ended", str(face_video.frames), str(face_video.frames * face_video.faces)]
    assert header.index("URL") == rows[0].index(rows[0].split()[8])   # columns line up
    scheme = _facestream(service, token, "streams", "--server", "ftp://127.0.0.1:1")
    assert scheme.returncode == 2 and "http:// or https://" in scheme.stderr

    # every tail reads from the start: a re-run shows every record again
    for _ in range(2):
        tail = _facestream(service, token, "tail", "cli-file", "--json")
        assert tail.returncode == 0, tail.stderr
        records = [json.loads(line) for line in tail.stdout.splitlines()]
        assert [r["frame_index"] for r in records] == list(range(face_video.frames))
        assert all(len(r["expression"]) == 29 and len(r["pose"]) == 6 for r in records)
        assert f"{face_video.frames} records from cli-file" in tail.stderr
    # a consumer group remembers: its second tail has nothing new, and says so
    out = tmp_path / "records.jsonl"
    to_file = _facestream(service, token, "tail", "cli-file", "--group", "analysis", "--out", str(out))
    assert to_file.returncode == 0 and len(out.read_text().splitlines()) == face_video.frames
    again = _facestream(service, token, "tail", "cli-file", "--group", "analysis", "--json")
    assert again.returncode == 0 and again.stdout == "" and "0 records" in again.stderr

    with_progress = _facestream(service, token, "events", "--stream", "cli-file", "--json", "--progress")
    kinds = [json.loads(line)["kind"] for line in with_progress.stdout.splitlines()]
    assert kinds[0] == "started" and kinds[-1] == "ended" and "progress" in kinds

    stop = _facestream(service, token, "stop", "cli-file")   # an ended stream: removed, its name free
    assert stop.returncode == 0 and stop.stdout.split()[:2] == ["ID", "STATE"]
    assert stop.stdout.splitlines()[1].split()[:2] == ["cli-file", "ended"]
    assert stop.stdout.splitlines()[2].startswith("cli-file was over: removed from the list")
    listed = _facestream(service, token, "streams", "--json")
    assert "cli-file" not in {s["id"] for s in json.loads(listed.stdout)}


def test_a_failed_stream_tail_says_why_events_show_it_and_it_can_be_restarted(service, token, face_video):
    (service.media_root / "cli-broken.mp4").write_text("this is not a video\n")
    sub = _facestream(service, token, "submit", "cli-broken.mp4", "--name", "cli-broken")
    assert sub.returncode == 0, sub.stderr
    failed = service.wait("cli-broken", lambda s: s["state"] == "failed", what="failed")
    tail = _facestream(service, token, "tail", "cli-broken")
    assert tail.returncode == 11 and tail.stdout == "", tail.stderr
    line, = tail.stderr.splitlines()
    assert line.startswith("facestream: error: stream cli-broken failed (0 records): ")
    assert "cli-broken.mp4" in line and failed["last_error"].split(": ")[-1] in line

    events = _facestream(service, token, "events", "--stream", "cli-broken")
    assert events.returncode == 0, events.stderr
    last = events.stdout.splitlines()[-1].split(" ", 3)
    assert last[1:3] == ["cli-broken", "failed"] and last[3].startswith('error="') and "cli-broken.mp4" in last[3]
    as_json = _facestream(service, token, "events", "--json")   # every stream's
    assert as_json.returncode == 0, as_json.stderr
    seen = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert "progress" not in {e["kind"] for e in seen}
    mine = [e for e in seen if e["stream_id"] == "cli-broken"]
    assert mine[-1]["kind"] == "failed" and "cli-broken.mp4" in mine[-1]["error"]

    # the file mended, the failed stream restarted: same id, and this time it ends with its records
    shutil.copy(face_video.path, service.media_root / "cli-broken.mp4")
    again = _facestream(service, token, "restart", "cli-broken")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[1].split()[0] == "cli-broken"
    ended = service.wait("cli-broken", lambda s: s["state"] == "ended", what="ended")
    assert ended["frames"] == face_video.frames
    tail = _facestream(service, token, "tail", "cli-broken", "--json")
    assert tail.returncode == 0, tail.stderr
    assert [json.loads(line)["frame_index"] for line in tail.stdout.splitlines()] == list(range(face_video.frames))


def test_client_errors_are_one_line_with_exit_status_9(service, token):
    unknown = _facestream(service, token, "stop", "no-such-stream")
    assert unknown.returncode == 9
    assert unknown.stderr.count("\n") == 1 and "no stream with id 'no-such-stream'" in unknown.stderr
    refused = _facestream(service, token, "submit", "concat:a.mp4|b.mp4")
    assert refused.returncode == 9 and "400" in refused.stderr and "Traceback" not in refused.stderr
    wrong_token = _facestream(service, "nope", "streams")
    assert wrong_token.returncode == 9 and "401" in wrong_token.stderr


def test_client_without_a_server_says_how_to_start_one(port):
    env = {**os.environ, "FACESTREAM_SERVER": f"http://127.0.0.1:{port}"}
    proc = subprocess.run([sys.executable, "-m", "streamer.cli", "streams"], capture_output=True, text=True,
                          timeout=60, env=env, cwd=REPO)
    assert proc.returncode == 9 and "is `facestream serve` running?" in proc.stderr
