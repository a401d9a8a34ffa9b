"""The ``facestream`` command as users run it: a subprocess, exit codes, stdout/stderr.

User errors must end with their own exit code and exactly one line on stderr, never a
traceback. Runs that need Ray join the test session's cluster with --address (starting
a private cluster per run would cost ~20 s each on a small machine).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import redis

from streamer.data.dataset import read_records
from streamer.data.redis_codec import decode_redis, stream_key
from workers import face_model
from workers.emotion import CLASSES, LABELS
from workers.emotion_labels import EmotionSource

REPO = Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "data" / "real"


def facestream(*args, timeout: float = 240, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **env_vars}
    return subprocess.run([sys.executable, "-m", "streamer.cli", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facestream: error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, face_video, tiny_checkpoint):
    d = tmp_path_factory.mktemp("bad")
    (d / "text.mp4").write_text("this is not a video\n")
    data = face_video.path.read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (d / "bad.yaml").write_text("detector:\n  treshold: 0.5\n")
    (d / "text.jpg").write_text("not an image")
    _retrained_beside_a_stale_classifier(tiny_checkpoint, d / "stale")
    return d


def _retrained_beside_a_stale_classifier(ckpt: Path, dest: Path) -> None:
    """Other weights under the same metadata, next to the classifier fitted on ``ckpt``'s eta."""
    import torch

    from workers import checkpoint, emotion
    from workers.networks import FaceRegressor

    torch.manual_seed(1)
    checkpoint.save(FaceRegressor("tiny"), json.loads(ckpt.with_suffix(".json").read_text()), dest)
    shutil.copy(emotion.path_for(ckpt), emotion.path_for(dest))


# (case id, argv builder, exit code, words the message must contain)
USER_ERRORS = [
    ("missing-video", lambda d, v, c: ["analyze", d / "nope.mp4"], 3, "does not exist"),
    ("text-as-mp4", lambda d, v, c: ["analyze", d / "text.mp4"], 4, "not a readable video"),
    ("truncated-video", lambda d, v, c: ["analyze", d / "truncated.mp4"], 4, "truncated.mp4"),
    ("no-checkpoint", lambda d, v, c: ["analyze", v, "--checkpoint", d / "none"], 5, "no trained checkpoint"),
    ("stale-classifier", lambda d, v, c: ["analyze", v, "--checkpoint", d / "stale"], 5, "other network weights"),
    ("redis-unreachable", lambda d, v, c: ["analyze", v, "--checkpoint", c, "--redis-url",
                                           "redis://127.0.0.1:1"], 6, "cannot reach Redis"),
    ("ray-unreachable", lambda d, v, c: ["analyze", v, "--checkpoint", c, "--address", "127.0.0.1:1"],
     8, "cannot join the Ray cluster"),
    ("bad-config-key", lambda d, v, c: ["analyze", v, "--config", d / "bad.yaml"], 2, "treshold"),
    ("no-arguments", lambda d, v, c: ["analyze"], 2, "required: video"),
    ("fps-and-every", lambda d, v, c: ["analyze", v, "--fps", 5, "--every", 2], 2, "not allowed"),
    ("predict-missing", lambda d, v, c: ["predict", d / "nope.jpg", "--checkpoint", c], 3, "does not exist"),
    ("predict-not-image", lambda d, v, c: ["predict", d / "text.jpg", "--checkpoint", c], 4, "not a readable image"),
    ("predict-no-checkpoint", lambda d, v, c: ["predict", REAL / "prnet_1.jpg", "--checkpoint", d / "x"],
     5, "no trained checkpoint"),
    ("report-missing", lambda d, v, c: ["report", d / "no-such-dir"], 3, "no such output directory"),
]


@pytest.fixture(scope="module")
def user_error_runs(bad_inputs, face_video, tiny_checkpoint):
    """Every bad invocation at once (each is a short process; in parallel they take the
    time of the slowest few, not of all)."""
    with ThreadPoolExecutor(4) as pool:
        runs = {case: pool.submit(facestream, *argv(bad_inputs, face_video.path, tiny_checkpoint))
                for case, argv, _, _ in USER_ERRORS}
        return {case: future.result() for case, future in runs.items()}


@pytest.mark.parametrize("case, code, words", [(c, code, w) for c, _, code, w in USER_ERRORS],
                         ids=[c for c, *_ in USER_ERRORS])
def test_user_errors_have_their_exit_code_and_one_line(user_error_runs, case, code, words):
    line = assert_one_line_error(user_error_runs[case], code)
    assert words in line


def test_analyze_on_a_live_url_prints_its_attempts_and_unreachable_exits_10(tmp_path):
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("source:\n  give_up_s: 1.5\n  reconnect_s: 0.2\n  reconnect_max_s: 0.4\n")
    url = f"rtsp://user:secret@127.0.0.1:{port}/cam"
    result = facestream("analyze", url, "--config", cfg, timeout=60)
    assert result.returncode == 10, result.stderr
    lines = result.stderr.strip().splitlines()
    shown = f"rtsp://***@127.0.0.1:{port}/cam"   # credentials masked
    assert lines[0] == f"facestream: connecting to {shown} (giving up after 1.5 s without a frame)"
    attempts = [line for line in lines if " failed: " in line]
    assert len(attempts) >= 2 and attempts[0].startswith(f"facestream: {shown}: attempt 1 failed: ")
    assert [int(a.split("attempt ")[1].split()[0]) for a in attempts] == list(range(1, len(attempts) + 1))
    assert lines[-1].startswith("facestream: error: ") and "unreachable" in lines[-1]
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


def test_analyze_end_to_end_with_annotation_then_report(tmp_path, face_video, tiny_checkpoint, ray_runtime, redis_url):
    out, cfg = tmp_path / "out", tmp_path / "half.yaml"
    # half-CPU replicas: the session's shared replicas may hold half of the 2-CPU test cluster
    cfg.write_text("model:\n  num_cpus_per_replica: 0.5\n")
    result = facestream("analyze", face_video.path, "--out", out, "--checkpoint", tiny_checkpoint,
                        "--address", ray_runtime.address, "--redis-url", redis_url, "--config", cfg,
                        "--stream-id", "cli-cam", "--every", 2, "--annotate", out / "annotated.mp4")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "20 frames, 20 faces in 1 track" in result.stdout and "1 tracks" not in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and (summary["frames"], summary["faces"]) == (20, 20)
    assert summary["annotated"] == str(out / "annotated.mp4") and (out / "annotated.mp4").stat().st_size > 0
    records = read_records(out, "cli-cam")
    client = redis.Redis.from_url(redis_url)
    in_redis = [decode_redis(f) for _, f in client.xrange(stream_key("facestream", "cli-cam"))]
    client.close()
    assert [r.frame_index for r in records] == [r.frame_index for r in in_redis] == list(range(0, 40, 2))

    report = facestream("report", out)
    assert report.returncode == 0, report.stderr
    assert Path(report.stdout.strip()).is_file()


def test_no_faces_exits_7_with_a_private_cluster_that_leaves_no_trace(tmp_path, blank_video, tiny_checkpoint):
    """The default set-up (private Ray, embedded Redis) from a user's point of view: Ray
    needs nothing in HOME and writes no token there, and the temp state is removed.
    (onnxruntime keeps a device id under ~/.cache whatever we do; that is not checked.)"""
    out, home = tmp_path / "out", tmp_path / "home"
    home.mkdir()
    scratch = Path(tempfile.mkdtemp(prefix="fs", dir="/tmp"))  # short: Ray's socket paths
    try:
        result = facestream("analyze", blank_video.path, "--out", out, "--checkpoint", tiny_checkpoint,
                            HOME=str(home), TMPDIR=str(scratch))
        line = assert_one_line_error(result, 7)
        assert "no face found" in line and str(out / "summary.json") in line
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "ok" and (summary["frames"], summary["faces"]) == (blank_video.frames, 0)
        assert summary["redis"].startswith("embedded")
        assert not (home / ".ray").exists()
        assert not [p.name for p in scratch.iterdir() if p.name.startswith(("facestream-ray", "facestream-redis"))]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_predict_prints_one_json_line_per_face(tiny_checkpoint):
    result = facestream("predict", REAL / "two_people.jpg", REAL / "obama-720p.jpg", "--json",
                        "--checkpoint", tiny_checkpoint)
    assert result.returncode == 0, result.stderr
    faces = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(f["image"]).name for f in faces] == ["two_people.jpg"] * 2 + ["obama-720p.jpg"]
    for f in faces:
        assert set(f) == {"image", "box", "score", "expression", "pose", "quaternion", "shape", "blendshapes",
                          "emotion", "emotion_probs"}
        assert list(f["emotion_probs"]) == list(CLASSES) and abs(sum(f["emotion_probs"].values()) - 1) < 1e-3
        assert f["emotion"] in LABELS
        assert len(f["blendshapes"]) == 53 and all(0 <= w <= 1 for w in f["blendshapes"].values())
        assert (len(f["expression"]), len(f["shape"]), len(f["quaternion"]), len(f["box"])) == (29, 99, 4, 4)
        assert set(f["pose"]) == {"yaw", "pitch", "roll", "tx", "ty", "scale"}
        x1, y1, x2, y2 = f["box"]
        assert f["score"] > 0.9 and x1 < x2 and y1 < y2
        assert abs(np.linalg.norm(f["quaternion"]) - 1) < 1e-4
    # obama-720p.jpg: RetinaFace puts the face at about x 588..742
    assert 560 < faces[2]["box"][0] < 620


def test_predict_json_with_the_shipped_weights_reads_emotion_from_the_branch():
    """The default checkpoint and its emotion branch, on a photo of a man smiling broadly."""
    result = facestream("predict", REAL / "obama-720p.jpg", "--json")
    assert result.returncode == 0, result.stderr
    face = json.loads(result.stdout)
    probs = face["emotion_probs"]
    assert abs(sum(probs.values()) - 1) < 1e-4
    assert face["emotion"] == "happy" and probs["happy"] > 0.8


def test_predict_json_reads_emotion_from_eta_when_configured(tmp_path):
    """``model.emotion: eta``: the classifier shipped beside the network reads the face's eta."""
    from workers import checkpoint, emotion

    cfg = tmp_path / "eta.yaml"
    cfg.write_text("model:\n  emotion: eta\n")
    result = facestream("predict", REAL / "obama-720p.jpg", "--json", "--config", cfg)
    assert result.returncode == 0, result.stderr
    face = json.loads(result.stdout)
    clf = emotion.load(checkpoint.default_path())
    want = clf.probs(np.array(face["expression"]))[0]
    np.testing.assert_allclose(list(face["emotion_probs"].values()), want, atol=2e-3)
    conf = max(face["emotion_probs"].values())
    top = max(face["emotion_probs"], key=face["emotion_probs"].get)
    assert face["emotion"] == (top if conf >= EmotionSource.ETA.min_prob else "uncertain")


def test_predict_text_names_the_emotion_and_abstains_as_configured(tiny_checkpoint, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("emotion:\n  min_prob: 1.01\n")
    result = facestream("predict", REAL / "obama-720p.jpg", "--checkpoint", tiny_checkpoint, "--config", cfg)
    assert result.returncode == 0, result.stderr
    assert "emotion uncertain (" in result.stdout
    small = tmp_path / "s.yaml"
    small.write_text("emotion:\n  min_face_px: 100000\n")
    result = facestream("predict", REAL / "obama-720p.jpg", "--checkpoint", tiny_checkpoint,
                        "--config", small, "--json")
    assert json.loads(result.stdout)["emotion"] == "too_small"


def test_predict_no_detect_treats_the_image_as_a_crop(tiny_checkpoint):
    result = facestream("predict", REAL / "prnet_1.jpg", "--no-detect", "--checkpoint", tiny_checkpoint)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and "prnet_1.jpg face 0:" in lines[0] and "yaw" in lines[0]


def test_predict_finds_a_face_that_fills_the_image(tiny_checkpoint, tmp_path):
    """A 48-px image that is all face (as FER2013's are): the detector alone finds nothing
    in it; predict looks again on a canvas (workers/padded_retry.py) and reports the face
    in the image's own pixels."""
    import cv2

    image = cv2.imread(str(REAL / "prnet_1.jpg"))
    # RetinaFace puts the face at about x 38..183, y 33..185: cut 0.7 of its height
    tight = cv2.resize(image[56:163, 57:164], (48, 48), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "tight.png"), tight)
    result = facestream("predict", tmp_path / "tight.png", "--json", "--checkpoint", tiny_checkpoint)
    assert result.returncode == 0, result.stderr
    (face,) = [json.loads(line) for line in result.stdout.splitlines()]
    x1, y1, x2, y2 = face["box"]
    assert -12 < x1 < 6 and -12 < y1 < 8 and 40 < x2 < 62 and 40 < y2 < 62, face["box"]


def test_face_model_prints_path_version_hash():
    result = facestream("face-model")
    assert result.returncode == 0, result.stderr
    fm = face_model.load()
    fields = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert fields["version"] == fm.version and fields["sha256"] == fm.sha256
    assert Path(fields["path"]).is_file()


def test_internal_error_names_a_log_with_the_traceback(tmp_path):
    part = tmp_path / "records" / "stream=x" / "part-00000.parquet"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"definitely not parquet")
    result = facestream("report", tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facestream: internal error: ")
    log = Path(lines[0].rsplit("traceback in ", 1)[1].rstrip(")"))
    assert "Traceback" in log.read_text()
    log.unlink()
