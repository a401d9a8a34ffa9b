"""`facestream serve` as a user runs it, in its own process: SIGTERM ends it cleanly.

The service runs its own private Ray here (a second cluster beside the test session's),
so this is the whole command: start-up line, a live RTSP stream, SIGTERM, flushed and
closed Parquet, exit status 0 and a last line that names each stream's final state.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from streamer.data.dataset import read_records
from streamer.service.client import ApiClient

from .conftest import free_port

REPO = Path(__file__).resolve().parents[3]


def test_sigterm_stops_streams_flushes_parquet_and_exits_0(tmp_path, tiny_checkpoint, face_video, port):
    from streamer.testbed import RtspServer

    config = tmp_path / "ray_config.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"checkpoint": str(tiny_checkpoint), "num_cpus_per_replica": 0.5},
        "parquet": {"rows_per_file": 100000, "flush_every_s": 3600},   # everything waits for the flush
    }))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    view_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "serve", "--config", str(config), "--port", str(port),
         "--out", str(out), "--media-root", str(tmp_path), "--view-port", str(view_port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        line = proc.stdout.readline()          # blocks until ready (or the process ends)
        assert line.startswith(f"facestream serving on http://127.0.0.1:{port}"), (line, proc.stderr.read()
                                                                                  if proc.poll() is not None else "")
        # the live view beside it: open without a token on loopback, its page from the package
        assert proc.stdout.readline().strip() == f"live view at http://127.0.0.1:{view_port}/"
        with urllib.request.urlopen(f"http://127.0.0.1:{view_port}/", timeout=10) as page:
            assert page.status == 200 and "/static/streams.js" in page.read().decode()
        client = ApiClient(f"http://127.0.0.1:{port}")
        with RtspServer(face_video.path) as rtsp:
            sid = client.submit(rtsp.url, name="cam")["id"]
            deadline = time.monotonic() + 90
            while client.stream(sid)["frames"] < 20:
                assert time.monotonic() < deadline, client.stream(sid)
                time.sleep(0.25)
            assert not list((out / "records").glob("stream=cam/part-*.parquet"))   # all still buffered
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    assert "cam stopped" in stdout and "Traceback" not in stderr
    # a clean shutdown is silent: Serve goes down before Ray, nothing retried or failed
    assert "failed" not in stderr and "retr" not in stderr and "(raylet)" not in stderr, stderr[-2000:]
    records = read_records(out, "cam")
    assert len(records) >= 20
    frames = [r.frame_index for r in records]
    assert frames == sorted(set(frames))
    assert not list(out.rglob(".*.tmp"))                  # no half-written part left behind


def test_listening_beyond_loopback_without_a_token_is_refused_before_anything_starts(tmp_path, port):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != "FACESTREAM_API_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "streamer.cli", "serve", "--host", "0.0.0.0", "--port", str(port),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "refusing to listen on 0.0.0.0 without an API token" in proc.stderr
    assert "--insecure-open-api" in proc.stderr
    assert "starting Ray" not in proc.stderr and not (tmp_path / "out").exists()


def test_a_media_root_that_does_not_exist_is_a_config_error_before_anything_starts(tmp_path, port):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != "FACESTREAM_MEDIA_ROOT"}
    missing = tmp_path / "no-such-media"
    proc = subprocess.run([sys.executable, "-m", "streamer.cli", "serve", "--port", str(port), "--media-root",
                           str(missing), "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"media_root: {missing} does not exist" in proc.stderr
    assert "starting Ray" not in proc.stderr and not (tmp_path / "out").exists()


def test_the_flag_that_says_it_is_meant_lets_an_open_api_listen_beyond_loopback():
    from streamer.config import load_config
    from streamer.service.auth import open_api_refusal

    cfg = load_config(overrides={"service": {"host": "0.0.0.0"}})
    assert "without an API token" in open_api_refusal(cfg, "0.0.0.0", True, None)
    assert open_api_refusal(cfg, "0.0.0.0", True, "a-token") is None           # a token: fine
    assert open_api_refusal(cfg, "127.0.0.1", False, None) is None             # loopback: fine
    cfg.service.insecure_open_api = True                                       # --insecure-open-api
    assert open_api_refusal(cfg, "0.0.0.0", True, None) is None
    from streamer.cli.parser import build_parser

    assert build_parser().parse_args(["serve", "--host", "0.0.0.0", "--insecure-open-api"]).insecure_open_api
