"""Typed configuration: dataclass defaults, then ``ray_config.yaml``, then CLI flags.

Every tunable lives in one of these dataclasses so that a YAML key that does not exist
is an error (a typo must not silently fall back to a default).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override names a key that does not exist or has a bad value."""


@dataclass
class SourceConfig:
    every: int = 1                 # keep every k-th frame (files)
    fps: float | None = None       # or resample to this rate (files); None keeps all
    queue_frames: int = 16         # bounded queue between decoder and session (backpressure)
    staleness_s: float = 2.0       # live: frames older than this are dropped
    reconnect_s: float = 1.0       # live: first reconnect delay (doubles, capped)
    reconnect_max_s: float = 5.0
    give_up_s: float = 60.0        # live: a source gone this long ends the stream `failed`
    open_timeout_s: float = 10.0
    # Limits on what a source may be (streamer.source enforces them; a refusal is a
    # SourceTooLarge naming the limit). Frames wider or taller than this are refused:
    # a file or stream whose first frame (or declared size) exceeds them is not opened,
    # a later frame that does is counted as a decode error and left out.
    max_width: int = 7680
    max_height: int = 4320
    # None: unlimited. Files declaring a longer duration are refused when opened, and no
    # frame past it is yielded (counted in stats["beyond_max_duration"]); a live stream
    # is ended by its session after running this long.
    max_duration_s: float | None = None
    # Where a live source may connect (streamer.netpolicy, enforced on every connection
    # by streamer.gateway). Always refused unless listed in allow_networks: link-local
    # (cloud metadata), unspecified, multicast, reserved, and the metadata endpoints
    # outside link-local, however the address is written. Entries are CIDRs; the longest
    # prefix matching an address, across both lists, decides before the built-in rules.
    allow_networks: list[str] = field(default_factory=list)
    deny_networks: list[str] = field(default_factory=list)
    # Loopback and private ranges (127/8, ::1, 10/8, 172.16/12, 192.168/16, 100.64/10,
    # fc00::/7): "allow", "deny", or "auto": allowed unless the service listens beyond
    # loopback, so `publish` + `submit rtsp://127.0.0.1:...` and LAN cameras work on a
    # local service and an exposed one cannot be pointed at its own network.
    local_networks: str = "auto"
    # RTSP over UDP: the server picks where RTP comes from and where RTCP is sent, which
    # the policy cannot hold, so it is refused unless set (then those endpoints and RTSP
    # redirects are outside the policy; the RTSP connection itself is still checked).
    rtsp_udp: bool = False


@dataclass
class DetectorConfig:
    score_threshold: float = 0.75
    nms_threshold: float = 0.4
    min_face_px: int = 20          # smaller boxes (shorter side) are ignored
    max_side: int = 640            # frames are downscaled so the longer side is at most this
    batch_size: int = 8


@dataclass
class TrackerConfig:
    high_score: float = 0.6        # first association pass
    low_score: float = 0.3         # second pass recovers low-score boxes of known tracks
    new_track_score: float = 0.7   # unmatched detections above this start tracks
    match_iou: float = 0.3
    max_lost_frames: int = 30      # a track unseen this long is ended
    min_hits: int = 1              # frames before a track is reported
    # Appearance (streamer/appearance.py): a small embedding of each face box keeps ids
    # from swapping when faces cross and gives a face lost for a while its id back.
    appearance: bool = True
    appearance_weight: float = 1.0     # matching cost: (1 - IoU) + weight × appearance distance
    appearance_gate: float = 0.35      # a box less alike than this never continues a track
    appearance_momentum: float = 0.9   # a track's embedding: running mean of its confident boxes'
    reacquire_distance: float = 0.15   # a lost track takes back a box this alike, anywhere
    reacquire_scale: float = 1.5       # ... whose size is within this factor of the track's
    # Hard shot cuts (streamer/cuts.py) end every track.
    cuts: bool = True
    cut_min_change: float = 0.08       # mean |Δ| of a 64×36 thumbnail (0–1) above this,
    cut_ratio: float = 4.0             # and this many times the median of the recent ones,
    cut_min_histogram: float = 0.1     # and a colour-histogram distance (0–1) above this
    cut_window: int = 30               # recent frame differences the median is taken over


@dataclass
class SmoothingConfig:
    min_cutoff: float = 1.0        # One-Euro: Hz at rest (lower = smoother)
    beta: float = 0.05             # One-Euro: speed coefficient (higher = less lag)
    d_cutoff: float = 1.0
    rotation_min_cutoff: float = 1.0
    rotation_beta: float = 0.5


@dataclass
class EmotionConfig:
    """When a face gets no emotion label (workers/emotion.py; trade-offs in docs/accuracy.md)."""
    min_prob: float = 0.4          # most likely class below this: "uncertain"
    min_face_px: float = 24.0      # box shorter side below this (source pixels): "too_small"
    max_yaw: float = 60.0          # |yaw| beyond this (degrees): "too_turned"
    max_pitch: float = 45.0        # |pitch| beyond this (degrees): "too_turned"
    switch_margin: float = 0.05    # a track's smoothed label changes only to a class this
    #                                much more probable than the one it holds (no flicker)


@dataclass
class ModelConfig:
    checkpoint: str | None = None  # None: the shipped default under workers/weights
    device: str = "auto"           # auto | cpu | cuda
    detector_replicas: int = 1
    regressor_replicas: int = 1
    max_batch_size: int = 32
    max_wait_ms: float = 10.0
    num_cpus_per_replica: float = 1.0
    num_gpus_per_replica: float = 0.0
    max_restarts: int = 3          # a crashed replica is restarted, its calls retried
    # custom Ray resources each replica needs: places replicas on the nodes that have them
    resources: dict[str, float] = field(default_factory=dict)


@dataclass
class RedisConfig:
    url: str | None = None         # None: an embedded server started for the run
    maxlen: int = 100_000          # XADD MAXLEN ~ per stream key
    key_prefix: str = "facestream"
    buffer_records: int = 100_000  # records held while Redis is away
    retry_s: float = 0.5
    connect_timeout_s: float = 2.0


@dataclass
class ParquetConfig:
    out: str = "out"
    rows_per_file: int = 50_000    # roll to a new file after this many rows
    flush_every_s: float = 30.0    # and write what is buffered at least this often
    compression: str = "zstd"


@dataclass
class SessionConfig:
    max_inflight_batches: int = 4  # crop batches awaiting the regressor per session
    progress_every_s: float = 1.0
    resources: dict[str, float] = field(default_factory=dict)  # as model.resources, for sessions
    max_restarts: int = 3          # a crashed session is restarted and resumes this often


@dataclass
class ServiceConfig:
    """``facestream serve``: where the API listens and what it accepts."""

    host: str = "127.0.0.1"        # loopback by default: exposing the API is a decision
    port: int = 8000
    max_streams: int = 16          # POST /streams beyond this is refused with 429
    api_token_file: str | None = None  # bearer token required when set (or FACESTREAM_API_TOKEN)
    max_body_bytes: int = 65536    # larger request bodies are refused with 413
    stop_timeout_s: float = 30.0   # DELETE waits this long for a session to flush
    # Listening beyond loopback without an API token lets anyone who reaches the port
    # submit streams: refused unless this says so (`facestream serve --insecure-open-api`).
    insecure_open_api: bool = False


@dataclass
class Config:
    media_root: str | None = None  # files the service may open (FACESTREAM_MEDIA_ROOT overrides)
    source: SourceConfig = field(default_factory=SourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    emotion: EmotionConfig = field(default_factory=EmotionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    parquet: ParquetConfig = field(default_factory=ParquetConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _merge(obj: Any, data: dict, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{where}{key}' (known: {', '.join(sorted(names))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, f"{where}{key}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], f"{where}{key}"))
    return obj


def _coerce(value: Any, hint: Any, where: str) -> Any:
    if typing.get_origin(hint) is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_type,) = typing.get_args(hint)
        return [_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    if typing.get_origin(hint) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, value_type = typing.get_args(hint)
        return {str(k): _coerce(v, value_type, f"{where}.{k}") for k, v in value.items()}
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if value is None:
        if type(None) in typing.get_args(hint):
            return None
        raise ConfigError(f"{where}: may not be null")
    target = args[0] if args else hint
    if target is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    try:
        if target in (int, float, str, bool):
            return target(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {target.__name__}, got {value!r}") from None
    return value


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Defaults, then the YAML file (if given or ``./ray_config.yaml`` exists), then overrides.

    ``overrides`` is a nested dict like the YAML, e.g. ``{"redis": {"url": "redis://..."}}``;
    the CLI builds it from its flags.
    """
    cfg = Config()
    if path is None and Path("ray_config.yaml").exists():
        path = "ray_config.yaml"
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
        _merge(cfg, data, "")
    if overrides:
        _merge(cfg, overrides, "")
    return cfg
