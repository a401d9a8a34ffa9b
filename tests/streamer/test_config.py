"""streamer.config: every value is held to its type and range when the config is loaded,
and a bad one stops the command with one line that names the key."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from streamer.config import (
    AnnotateConfig,
    Config,
    ConfigError,
    MirrorAveraging,
    Priority,
    TileMode,
    check,
    checked,
    load_config,
)

REPO = Path(__file__).resolve().parents[2]


def _load(tmp_path, data) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data) if isinstance(data, dict) else data)
    return load_config(path)


def test_a_good_file_loads_with_the_fields_types(tmp_path):
    cfg = _load(tmp_path, "model:\n  max_wait_ms: 20\n  resources: {gpu_node: 1}\n"
                          "session:\n  max_inflight_batches: 2\nsource:\n  fps: 12\n  max_duration_s: null\n"
                          "annotate:\n  crf: 23\n  preset: fast\n")
    assert cfg.model.max_wait_ms == 20.0 and type(cfg.model.max_wait_ms) is float
    assert cfg.model.resources == {"gpu_node": 1.0} and type(cfg.model.resources["gpu_node"]) is float
    assert cfg.session.max_inflight_batches == 2 and type(cfg.session.max_inflight_batches) is int
    assert cfg.source.fps == 12.0 and type(cfg.source.fps) is float
    assert cfg.source.max_duration_s is None
    assert cfg.annotate == AnnotateConfig(crf=23, preset="fast")
    assert cfg.detector.batch_size == 8                       # untouched keys keep their defaults


def test_the_shipped_file_is_the_defaults():
    assert load_config(REPO / "ray_config.yaml") == Config()


@pytest.mark.parametrize("text, message", [
    ("session:\n  max_inflight_batches: 2.9\n", "session.max_inflight_batches: expected an integer, got 2.9"),
    ("session:\n  max_inflight_batches: '4'\n", "session.max_inflight_batches: expected an integer, got '4'"),
    ("model:\n  max_wait_ms: fast\n", "model.max_wait_ms: expected a number, got 'fast'"),
    ("source:\n  every: true\n", "source.every: expected an integer, got True"),
    ("source:\n  rtsp_udp: 1\n", "source.rtsp_udp: expected true/false, got 1"),
    ("redis:\n  key_prefix: 5\n", "redis.key_prefix: expected a string, got 5"),
    ("detector:\n  batch_size: null\n", "detector.batch_size: may not be null"),
    ("model:\n  resources: {gpu: many}\n", "model.resources.gpu: expected a number, got 'many'"),
    ("source:\n  deny_networks: [10.0.0.0/8, 7]\n", r"source.deny_networks\[1\]: expected a string, got 7"),
    ("model:\n  priority: 5\n", "model.priority: expected a string, got 5"),
])
def test_a_value_of_the_wrong_type_names_its_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=f"c.yaml: {message}$"):
        _load(tmp_path, text)


@pytest.mark.parametrize("text, message", [
    ("session:\n  max_inflight_batches: 0\n", "session.max_inflight_batches: must be >= 1, got 0"),
    ("detector:\n  score_threshold: 1.5\n", "detector.score_threshold: must be <= 1, got 1.5"),
    ("source:\n  staleness_s: 0\n", "source.staleness_s: must be > 0, got 0.0"),
    ("service:\n  port: 70000\n", "service.port: must be <= 65535, got 70000"),
    ("model:\n  resources: {gpu: -1}\n", "model.resources.gpu: must be >= 0, got -1.0"),
    ("model:\n  device: gpu\n", "model.device: expected auto, cpu, cuda or cuda:N, got 'gpu'"),
    ("source:\n  local_networks: sometimes\n",
     "source.local_networks: expected one of auto, allow, deny, got 'sometimes'"),
    ("annotate:\n  preset: quick\n", "annotate.preset: expected one of ultrafast, .*, got 'quick'"),
    ("model:\n  priority: camera_first\n", "model.priority: expected one of live_first, fifo, got 'camera_first'"),
    ("model:\n  mirror_average: sometimes\n",
     "model.mirror_average: expected one of files, always, never, got 'sometimes'"),
])
def test_a_value_out_of_its_range_names_its_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=f"c.yaml: {message}$"):
        _load(tmp_path, text)


def test_a_vocabulary_field_holds_the_member_its_word_names(tmp_path):
    cfg = _load(tmp_path, "model:\n  priority: fifo\n  mirror_average: never\n")
    assert cfg.model.priority is Priority.FIFO and cfg.model.mirror_average is MirrorAveraging.NEVER
    assert cfg.model.priority == "fifo"     # and is still the word wherever it is written
    assert (Config().model.priority, Config().model.mirror_average) == (Priority.LIVE_FIRST, MirrorAveraging.FILES)


def test_a_bare_on_or_off_names_the_member_though_yaml_reads_a_boolean(tmp_path):
    assert _load(tmp_path, "detector:\n  tiles: off\n").detector.tiles is TileMode.OFF
    assert _load(tmp_path, "detector:\n  tiles: on\n").detector.tiles is TileMode.ON
    assert Config().detector.tiles is TileMode.AUTO
    with pytest.raises(ConfigError, match="c.yaml: model.priority: expected a string, got False$"):
        _load(tmp_path, "model:\n  priority: off\n")     # a vocabulary without the word


def test_unknown_keys_and_non_mappings_are_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"c.yaml: unknown config key 'session.max_inflight' \(known: .*"
                                          r"max_inflight_batches"):
        _load(tmp_path, "session:\n  max_inflight: 2\n")
    with pytest.raises(ConfigError, match="c.yaml: unknown config key 'sesion'"):
        _load(tmp_path, "sesion: {}\n")
    with pytest.raises(ConfigError, match="c.yaml: session: expected a mapping, got int"):
        _load(tmp_path, "session: 3\n")


def test_overrides_are_checked_too_and_name_no_file(tmp_path):
    with pytest.raises(ConfigError, match="^service.port: must be >= 1, got 0$"):
        load_config(None, {"service": {"port": 0}})
    assert load_config(None, {"model": {"device": "cuda:1"}}).model.device == "cuda:1"


def test_limits_are_kept_beside_their_fields():
    limits = {f.name: dict(f.metadata) for f in dataclasses.fields(Config().session)}
    assert limits["max_inflight_batches"] == {"ge": 1}
    with pytest.raises(TypeError, match="unknown limits: minimum"):
        checked(1, minimum=0)
    # check() also holds a config built in code to its fields
    cfg = Config()
    cfg.session.max_inflight_batches = 0
    with pytest.raises(ConfigError, match="^session.max_inflight_batches: must be >= 1, got 0$"):
        check(cfg)


@pytest.mark.parametrize("argv", [["serve"], ["analyze", "clip.mp4"], ["predict", "face.jpg"]], ids=lambda a: a[0])
def test_a_bad_value_stops_the_command_with_one_line_before_anything_starts(tmp_path, argv):
    """serve: before Ray and the replicas start ("starting Ray ..." never printed);
    analyze and predict: before their inputs are even looked at."""
    config = tmp_path / "ray_config.yaml"
    config.write_text("session:\n  max_inflight_batches: 0\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "streamer.cli", *argv, "--config", str(config)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"facestream: error: {config}: session.max_inflight_batches: must be >= 1, got 0"]
