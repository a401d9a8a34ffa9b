"""`facestream serve` killed with its whole process group, then started again: its
streams come back (a camera resumes, a file carries on after what its outputs hold,
an ended stream is listed as it was) and the embedded Redis kept what it held."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
import yaml

from streamer.data.dataset import read_records
from streamer.data.events import decode_event
from streamer.data.redis_codec import decode_redis
from streamer.pipeline.redis_server import EmbeddedRedis
from streamer.pipeline.status import StreamState
from streamer.service.client import ApiClient
from streamer.service.registry import StoredStream, StreamDefinition, StreamRegistry

REPO = Path(__file__).resolve().parents[3]
TOKEN = "restart-token-7c2a"
CLIP_FRAMES = 200


def _session_processes(sid: int) -> dict[int, str]:
    """pid -> command line of every process in the session ``sid`` (all that a serve
    started with start_new_session=True spawned, Ray's included)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, ValueError):
                pass
    return found


def _end_session(sid: int, wait_s: float = 30.0) -> None:
    """Wait for what the killed serve left to go by itself (Ray's processes die with their
    parent within seconds), then kill whatever is left of it, by pid."""
    deadline = time.monotonic() + wait_s
    while _session_processes(sid) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in _session_processes(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _records(url: str, key: str) -> list[int]:
    client = redis.Redis.from_url(url)
    try:
        return [decode_redis(f).frame_index for _, f in client.xrange(key)]
    finally:
        client.close()


def _events(url: str, stream_id: str) -> list[dict]:
    client = redis.Redis.from_url(url)
    try:
        events = [decode_event(f) for _, f in client.xrange("facestream:events")]
    finally:
        client.close()
    return [e for e in events if e["stream_id"] == stream_id]


def _wait(client: ApiClient, stream_id: str, until, what: str, timeout_s: float = 120) -> dict:
    deadline, status = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        status = client.stream(stream_id)
        if until(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"{stream_id} never reached {what}: {status}")


def test_a_killed_service_resumes_its_streams_and_keeps_its_redis(tmp_path, tiny_checkpoint, face_video, port):
    from conftest import _face_patches, encode_face_video

    from streamer.testbed import RtspServer

    media = tmp_path / "media"
    media.mkdir()
    encode_face_video(media / "clip.mp4", _face_patches("obama-720p.jpg", 110), frames=CLIP_FRAMES)
    encode_face_video(media / "short.mp4", _face_patches("obama-720p.jpg", 110), frames=12)
    (tmp_path / "token").write_text(TOKEN + "\n")
    config = tmp_path / "ray_config.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"checkpoint": str(tiny_checkpoint), "num_cpus_per_replica": 0.5},
        "parquet": {"rows_per_file": 25},        # parts written as the streams go
        "service": {"api_token_file": str(tmp_path / "token")},
    }))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    sessions: list[int] = []
    ray_dirs: set[str] = set()

    def serve() -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamer.cli", "serve", "--config", str(config), "--port", str(port),
             "--out", str(out), "--media-root", str(media)],
            stdout=subprocess.PIPE, stderr=open(tmp_path / "serve.err", "a"), text=True, env=env, cwd=REPO,
            start_new_session=True)
        sessions.append(proc.pid)
        line = proc.stdout.readline()          # blocks until ready (or the process ends)
        assert line.startswith("facestream serving on"), (tmp_path / "serve.err").read_text()[-3000:]
        for cmd in _session_processes(proc.pid).values():   # the private Ray's directory, to clean up
            ray_dirs.update(arg.split("=", 1)[1] for arg in cmd.split() if arg.startswith("--temp-dir="))
        return proc

    client = ApiClient(f"http://127.0.0.1:{port}", token=TOKEN)
    camera = RtspServer(face_video.path).start()
    try:
        first = serve()
        client.submit("short.mp4", name="done")
        client.submit(camera.url, name="cam")
        _wait(client, "done", lambda s: s["state"] == "ended", "the end")
        _wait(client, "cam", lambda s: s["frames"] >= 20, "20 frames")
        client.submit("clip.mp4", name="clip")
        _wait(client, "clip", lambda s: s["frames"] >= 30, "30 frames")   # a part (25 rows) written
        os.killpg(first.pid, signal.SIGKILL)              # the whole group, mid-stream
        first.wait()
        _end_session(first.pid)
        with EmbeddedRedis(data_dir=out / "redis") as kept:   # what the killed service's Redis kept
            killed_at = {sid: _records(kept.url, f"facestream:stream:{sid}") for sid in ("cam", "clip")}
            registry = StreamRegistry(kept.url, "facestream", timeout_s=2.0)   # two more, as if left earlier:
            registry.save(_stored("old", "short.mp4", StreamState.ENDED, ended_epoch=time.time() - 7200))  # expired
            registry.save(_stored("gone", "gone.mp4", StreamState.RUNNING))     # a file since removed
            registry.close()
        assert 0 < len(killed_at["clip"]) < CLIP_FRAMES and killed_at["cam"], killed_at

        serve()                                          # killed with its group below
        listed = {s["id"]: s for s in client.streams()}
        assert set(listed) == {"done", "cam", "clip", "gone"}, listed          # "old" expired
        assert listed["done"]["state"] == "ended" and listed["done"]["frames"] == 12, listed["done"]
        assert listed["gone"]["state"] == "failed" and "not resumed" in listed["gone"]["last_error"], listed["gone"]
        assert listed["cam"]["state"] in ("connecting", "running") and listed["clip"]["state"] in (
            "connecting", "running", "ended"), listed
        clip = _wait(client, "clip", lambda s: s["state"] not in ("connecting", "running"), "the end")
        assert clip["state"] == "ended", clip
        cam = _wait(client, "cam", lambda s: s["frames"] >= 20, "20 frames after the restart")
        assert cam["state"] == "running"
        assert client.stop("cam")["state"] == "stopped"     # its Parquet flushed
        _check_outputs(client.health()["redis"], out, killed_at, clip)
    finally:
        camera.stop()
        for sid in sessions:
            try:
                os.killpg(sid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _end_session(sid, wait_s=10)
        for directory in ray_dirs:
            shutil.rmtree(directory, ignore_errors=True)


def _stored(stream_id: str, url: str, state: StreamState, ended_epoch: float | None = None) -> StoredStream:
    return StoredStream(StreamDefinition(stream_id, url, url, stream_id, None, {}, "2026-12-07T00:00:00Z"), state,
                        ended_epoch=ended_epoch)


def _check_outputs(redis_url: str, out: Path, killed_at: dict[str, list[int]], clip: dict) -> None:
    left = redis.Redis.from_url(redis_url).hkeys("facestream:service:streams")
    assert sorted(left) == [b"cam", b"clip", b"done", b"gone"], left       # the expired one is gone there too
    # the file: every frame once, in Parquet and in Redis (the earlier ones from the killed
    # service's Redis, kept in its append-only file), carried on after what the outputs held
    (resumed,) = [e for e in _events(redis_url, "clip") if e["kind"] == "resumed"]
    assert resumed["cause"] == "service_restart" and resumed["after_frame"] >= 24, resumed
    assert clip["frames"] == CLIP_FRAMES - 1 - resumed["after_frame"], clip
    assert [r.frame_index for r in read_records(out, "clip")] == list(range(CLIP_FRAMES))
    redis_frames = _records(redis_url, "facestream:stream:clip")
    assert redis_frames == list(range(CLIP_FRAMES))
    assert redis_frames[:len(killed_at["clip"])] == killed_at["clip"]
    # the camera: resumed, numbering its frames after the last one any output held
    cam_events = _events(redis_url, "cam")
    (resumed,) = [e for e in cam_events if e["kind"] == "resumed"]
    assert resumed["cause"] == "service_restart" and resumed["after_frame"] >= killed_at["cam"][-1]
    assert [e["kind"] for e in cam_events][-1] == "stopped"
    cam_frames = _records(redis_url, "facestream:stream:cam")
    assert cam_frames[:len(killed_at["cam"])] == killed_at["cam"] and cam_frames == sorted(set(cam_frames))
    assert len(cam_frames) >= len(killed_at["cam"]) + 20
    parquet = [r.frame_index for r in read_records(out, "cam")]
    assert parquet == sorted(set(parquet)) and parquet[-1] == cam_frames[-1]
    # the ended stream's events from before the kill are still there
    assert [e["kind"] for e in _events(redis_url, "done")][-1] == "ended"
    clip_after = next(e for e in _events(redis_url, "clip") if e["kind"] == "resumed")["after_frame"]
    print(f"\nFIGURE service kill: Redis kept {len(killed_at['clip'])} clip and {len(killed_at['cam'])} camera "
          f"records; the clip resumed after frame {clip_after} ({CLIP_FRAMES} frames once each in Redis and "
          f"Parquet), the camera after frame {resumed['after_frame']} ({len(cam_frames)} records, none twice)")
