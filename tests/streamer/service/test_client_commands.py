"""The client commands as a user runs them: `facestream submit / streams / tail / stop`."""
from __future__ import annotations

import json
import os
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

    tail = _facestream(service, token, "tail", "cli-file", "--json")
    assert tail.returncode == 0, tail.stderr
    records = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [r["frame_index"] for r in records] == list(range(face_video.frames))
    assert all(len(r["expression"]) == 29 and len(r["pose"]) == 6 for r in records)
    # the consumer group remembers: a second tail has nothing new, and says so
    again = _facestream(service, token, "tail", "cli-file", "--json")
    assert again.returncode == 0 and again.stdout == "" and "0 records" in again.stderr
    # another group, written to a file
    out = tmp_path / "records.jsonl"
    to_file = _facestream(service, token, "tail", "cli-file", "--group", "analysis", "--out", str(out))
    assert to_file.returncode == 0 and len(out.read_text().splitlines()) == face_video.frames

    stop = _facestream(service, token, "stop", "cli-file")   # stopping an ended stream is harmless
    assert stop.returncode == 0 and "ended" in stop.stdout


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
