"""Typed configuration: dataclass defaults, then ``ray_config.yaml``, then CLI flags.

Every tunable lives in one of these dataclasses so that a YAML key that does not exist
is an error (a typo must not silently fall back to a default). Each value is checked
when the config is loaded, against its field's type and the limits written beside the
field (``checked(default, ge=1)``): a bad value stops the command that loads it, with
the key's dotted path, instead of failing every stream later.
"""
from __future__ import annotations

import dataclasses
import operator
import re
import types
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from workers.emotion_labels import EmotionConfig, EmotionSource
from workers.runtime import Runtime


class ConfigError(ValueError):
    """A config file or override names a key that does not exist or has a bad value."""


# What a field's value may be beyond its type, in the field's metadata: ge / gt / le
# (bounds), choices (allowed values), pattern + means (a full-match regex and how to say
# it). Plain keys, so a dataclass that must not import this module (workers/) can carry
# them too: ``field(default=0.4, metadata={"ge": 0})``.
_LIMITS = ("ge", "gt", "le", "choices", "pattern", "means")

PARQUET_COMPRESSIONS = ("zstd", "snappy", "gzip", "brotli", "lz4", "lz4_raw", "none")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")


class Priority(StrEnum):
    """Which waiting calls a shared model replica serves first (``model.priority``; the
    rule is :class:`streamer.pipeline.batching.Batcher`'s). Defined here, below the pipeline,
    because the config holds values to it; a ``StrEnum``, so YAML and flags keep the word."""

    LIVE_FIRST = "live_first"   # cameras cannot wait, files can
    FIFO = "fifo"               # in order of arrival


class DetectionPhasing(StrEnum):
    """Where the service's streams run their scheduled detections (``detector.phase``;
    :mod:`streamer.tracking.schedule`)."""

    AUTO = "auto"   # each stream on the slot of every_frames least used by the others
    OFF = "off"     # each counts from its own last run: cameras in step detect together


class MirrorAveraging(StrEnum):
    """Which streams' crops a checkpoint that asks for mirror averaging reads averaged with
    their mirror image (``model.mirror_average``; :func:`streamer.pipeline.replicas.reading`)."""

    FILES = "files"      # files' crops; a camera's read one view, at half the network's work
    ALWAYS = "always"
    NEVER = "never"


class TileMode(StrEnum):
    """Whether the detector also sees tiles of a large frame at a higher resolution
    (``detector.tiles``; :mod:`streamer.tracking.tiles`)."""

    AUTO = "auto"   # frames whose longer side is more than twice detector.max_side (1080p at 640)
    ON = "on"       # every frame larger than detector.max_side
    OFF = "off"


def checked(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
            **limits: Any) -> Any:
    """A dataclass field whose value :func:`check` holds to ``limits`` (see ``_LIMITS``)."""
    unknown = set(limits) - set(_LIMITS)
    if unknown:
        raise TypeError(f"unknown limits: {', '.join(sorted(unknown))}")
    return field(default=default, default_factory=default_factory, metadata=limits)


@dataclass
class SourceConfig:
    every: int = checked(1, ge=1)  # keep every k-th frame (files)
    fps: float | None = checked(None, gt=0)  # or resample to this rate (files); None keeps all
    queue_frames: int = checked(16, ge=1)  # bounded queue between decoder and session (backpressure)
    staleness_s: float = checked(2.0, gt=0)  # live: frames older than this are dropped
    reconnect_s: float = checked(1.0, gt=0)  # live: first reconnect delay (doubles, capped)
    reconnect_max_s: float = checked(5.0, gt=0)
    give_up_s: float = checked(60.0, gt=0)  # live: a source gone this long ends the stream `failed`
    open_timeout_s: float = checked(10.0, gt=0)
    # Limits on what a source may be (streamer.sources.files enforces them; a refusal is a
    # SourceTooLarge naming the limit). Frames wider or taller than this are refused:
    # a file or stream whose first frame (or declared size) exceeds them is not opened,
    # a later frame that does is counted as a decode error and left out.
    max_width: int = checked(7680, ge=1)
    max_height: int = checked(4320, ge=1)
    # None: unlimited. Files declaring a longer duration are refused when opened, and no
    # frame past it is yielded (counted in stats["beyond_max_duration"]); a live stream
    # is ended by its session after running this long.
    max_duration_s: float | None = checked(None, gt=0)
    # Where a live source may connect (streamer.sources.netpolicy, enforced on every connection
    # by streamer.sources.gateway). Always refused unless listed in allow_networks: link-local
    # (cloud metadata), unspecified, multicast, reserved, and the metadata endpoints
    # outside link-local, however the address is written. Entries are CIDRs; the longest
    # prefix matching an address, across both lists, decides before the built-in rules.
    allow_networks: list[str] = field(default_factory=list)
    deny_networks: list[str] = field(default_factory=list)
    # Loopback and private ranges (127/8, ::1, 10/8, 172.16/12, 192.168/16, 100.64/10,
    # fc00::/7): "allow", "deny", or "auto": allowed unless the service listens beyond
    # loopback, so `publish` + `submit rtsp://127.0.0.1:...` and LAN cameras work on a
    # local service and an exposed one cannot be pointed at its own network.
    local_networks: str = checked("auto", choices=("auto", "allow", "deny"))
    # RTSP over UDP: the server picks where RTP comes from and where RTCP is sent, which
    # the policy cannot hold, so it is refused unless set (then those endpoints and RTSP
    # redirects are outside the policy; the RTSP connection itself is still checked).
    rtsp_udp: bool = False


@dataclass
class DetectorConfig:
    score_threshold: float = checked(0.75, ge=0, le=1)
    nms_threshold: float = checked(0.4, ge=0, le=1)
    min_face_px: int = checked(20, ge=0)  # smaller boxes (shorter side, source pixels) are ignored
    max_side: int = checked(640, ge=1)  # frames are downscaled so the longer side is at most this
    batch_size: int = checked(8, ge=1)  # frames per network call (a replica batches across streams)
    # Track-driven detection (streamer/tracking/follow.py): the detector runs every this many source
    # frames (the new-face check), at a hard cut and at once when a track's presence falls;
    # between runs faces are placed from the regressor's landmarks. 1: every frame.
    every_frames: int = checked(10, ge=1)
    # Small faces in large frames (streamer/tracking/tiles.py): each run also sees, in rotation,
    # one tile of the frame as a tile_max_side detector would, tile_side pixels square to the
    # detector (224 at 960: a 1080p frame in 15 tiles, about a fifth more pixels a run).
    tiles: TileMode = TileMode.AUTO
    tile_max_side: int = checked(960, ge=1)
    tile_side: int = checked(224, ge=32)
    # The service spreads its streams' scheduled runs over those frames (auto) so that cameras
    # in step do not all reach the shared detector on the same frame; off: each counts from
    # its own last run. `analyze` and single sessions count from their last run either way.
    phase: DetectionPhasing = DetectionPhasing.AUTO


@dataclass
class TrackerConfig:
    high_score: float = checked(0.6, ge=0, le=1)  # first association pass
    low_score: float = checked(0.3, ge=0, le=1)  # second pass recovers low-score boxes of known tracks
    new_track_score: float = checked(0.7, ge=0, le=1)  # unmatched detections above this start tracks
    match_iou: float = checked(0.3, ge=0, le=1)
    max_lost_frames: int = checked(30, ge=0)  # a track unseen this long is ended
    min_hits: int = checked(1, ge=1)  # frames before a track is reported
    # Appearance (streamer/tracking/appearance.py): a small embedding of each face box keeps ids
    # from swapping when faces cross and gives a face lost for a while its id back.
    appearance: bool = True
    appearance_weight: float = checked(1.0, ge=0)  # matching cost: (1 - IoU) + weight × appearance distance
    appearance_gate: float = checked(0.35, ge=0)  # a box less alike than this never continues a track
    # a track's embedding: running mean of its confident boxes'
    appearance_momentum: float = checked(0.9, ge=0, le=1)
    reacquire_distance: float = checked(0.15, ge=0)  # a lost track takes back a box this alike, anywhere
    reacquire_scale: float = checked(1.5, ge=1)  # ... whose size is within this factor of the track's
    # within this many box sides of where it was predicted, the looser appearance_gate applies
    reacquire_near: float = checked(2.0, ge=0)
    # Between detector runs (detector.every_frames) a face's box follows the regressor's
    # landmarks, except where they put it within this fraction of the box side of where
    # the track already has it: a still face keeps a still crop.
    follow_deadband: float = checked(0.02, ge=0, le=1)
    # Hard shot cuts (streamer/tracking/cuts.py) end every track.
    cuts: bool = True
    # A cut: the mean |Δ| of a 64×36 thumbnail (0–1) above cut_min_change, and either (a) it
    # cut_ratio times its typical value (the recent median or the last, whichever is larger) with
    # a colour-histogram distance (0–1) above cut_min_histogram, or (b) the histogram distance
    # above cut_colour_histogram and cut_ratio times its typical value, the change
    # cut_colour_change_ratio times its (a cut during a pan). bench/cuts_real.py measures them.
    cut_min_change: float = checked(0.08, ge=0)
    cut_ratio: float = checked(4.0, ge=0)
    cut_min_histogram: float = checked(0.05, ge=0)
    cut_colour_histogram: float = checked(0.1, ge=0)
    cut_colour_change_ratio: float = checked(2.0, ge=0)
    cut_window: int = checked(30, ge=1)  # recent frame differences the median is taken over


@dataclass
class SmoothingConfig:
    min_cutoff: float = checked(1.0, gt=0)  # One-Euro: Hz at rest (lower = smoother)
    beta: float = checked(0.05, ge=0)  # One-Euro: speed coefficient (higher = less lag)
    d_cutoff: float = checked(1.0, gt=0)
    rotation_min_cutoff: float = checked(1.0, gt=0)
    rotation_beta: float = checked(0.5, ge=0)
    # Outliers (streamer/pipeline/outliers.py) change no smoothed value: with hold_doubted, the
    # reading of a followed crop the presence probe doubts (below its threshold); a reading
    # whose rotation is further than rotation_jump_deg from the smoothed one (0: no such
    # rule), or than rotation_max_speed_deg_s allows since the reading before, unless
    # outlier_confirm in a row agree with each other: a mirror-flipped yaw is not motion.
    hold_doubted: bool = True
    rotation_jump_deg: float = checked(45.0, ge=0, le=180)
    rotation_max_speed_deg_s: float = checked(600.0, gt=0)
    outlier_confirm: int = checked(3, ge=1)


@dataclass
class ModelConfig:
    checkpoint: str | None = None  # None: the shipped default under workers/weights
    device: str = checked("auto", pattern=r"auto|cpu|cuda(:\d+)?", means="auto, cpu, cuda or cuda:N")
    detector_replicas: int = checked(1, ge=1)
    regressor_replicas: int = checked(1, ge=1)
    max_batch_size: int = checked(32, ge=1)
    max_wait_ms: float = checked(10.0, ge=0)
    num_cpus_per_replica: float = checked(1.0, ge=0)
    num_gpus_per_replica: float = checked(0.0, ge=0)
    max_restarts: int = checked(3, ge=-1)  # a crashed replica is restarted, its calls retried (-1: always)
    # which waiting calls a shared replica serves first: live_first (cameras cannot wait,
    # files can: a camera falling behind holds files back, so a file never starves a
    # camera) or fifo (in order of arrival)
    priority: Priority = Priority.LIVE_FIRST
    # which crops a checkpoint that asks for mirror averaging (workers/mirror.py) reads
    # averaged with their mirror image, at twice the network's work: files' (a camera's
    # crops read one view, so four 720p30 cameras stay real-time on two cores), every
    # crop (always), or none (never)
    mirror_average: MirrorAveraging = MirrorAveraging.FILES
    # what reads emotion: the emotion branch shipped beside the network (branch: 0.62 of
    # held-out FER2013 faces right against 0.55; the network costs about 1.4x the CPU), or
    # the classifier over eta (eta: no extra cost). A network without a branch reads eta.
    emotion: EmotionSource = EmotionSource.BRANCH
    # what runs the regressor's network on a CPU: onnxruntime (auto: the network exported
    # at load time, 1.4-1.8x torch's speed at the batches cameras bring; torch if the
    # export fails) or torch (the reference). A GPU always runs torch.
    runtime: Runtime = Runtime.AUTO
    # custom Ray resources each replica needs: places replicas on the nodes that have them
    resources: dict[str, float] = checked(default_factory=dict, ge=0)


@dataclass
class RedisConfig:
    url: str | None = None         # None: an embedded server started for the run
    maxlen: int = checked(100_000, ge=1)  # XADD MAXLEN ~ per stream key
    key_prefix: str = "facestream"
    buffer_records: int = checked(100_000, ge=0)  # records held while Redis is away
    retry_s: float = checked(0.5, gt=0)
    connect_timeout_s: float = checked(2.0, gt=0)
    # `serve`'s embedded Redis (no url) keeps its data across restarts in an append-only
    # file under data_dir (None: <parquet.out>/redis): records not yet read, events, and the
    # service's streams, which a restarted service resumes. false: gone with the process,
    # as `analyze`'s always is.
    persist: bool = True
    data_dir: str | None = None


@dataclass
class ParquetConfig:
    out: str = "out"
    rows_per_file: int = checked(50_000, ge=1)  # roll to a new file after this many rows
    flush_every_s: float = checked(30.0, gt=0)  # and write what is buffered at least this often
    compression: str = checked("zstd", choices=PARQUET_COMPRESSIONS)


@dataclass
class IdentityConfig:
    """Persons (streamer/persons/book.py): a face-identity embedding (workers/identity.py, dlib's
    ResNet) sampled per track, and the rules by which tracks become one person.

    Distances are the embedding's (workers.identity.FaceIdentity.distance); the two
    thresholds were set by bench/identity_accuracy.py (docs/accuracy.md, "Persons").
    """

    enabled: bool = True           # false: no embedding, no identity replica, person_id null
    every_s: float = checked(4.0, gt=0)   # a track's identity is sampled again this often, after
    first_samples: int = checked(3, ge=1)   # up to this many samples at its start, while it matches nobody,
    first_every_s: float = checked(0.5, ge=0)  # this far apart (one sample alone is noisy)
    # Distances between unit embeddings (0-2); defaults = workers.identity's calibration
    same_person_max: float = checked(0.26, gt=0)  # a track joins the nearest person closer than this
    split_min: float = checked(0.40, gt=0)   # two samples in a row this far from the track's mean: it jumped
    min_face_px: float = checked(32.0, ge=0)  # samples of smaller faces (box shorter side) link and split nothing
    max_yaw: float = checked(45.0, ge=0)    # nor those of faces turned further than this (degrees)
    replicas: int = checked(1, ge=1)        # identity replicas (Ray actors), shared by all streams
    # Persons shared by the streams of a deployment (streamer/persons/gallery.py): each person's mean
    # embedding kept in Redis, so that one face on two cameras gets one id. Off: embeddings
    # stay in the session's memory and die with it.
    gallery: bool = False
    gallery_ttl_s: float = checked(3600.0, gt=0)  # a person not seen for this long is forgotten


@dataclass
class SessionConfig:
    max_inflight_batches: int = checked(4, ge=1)  # crop batches awaiting the regressor per session
    progress_every_s: float = checked(1.0, ge=0)
    resources: dict[str, float] = checked(default_factory=dict, ge=0)  # as model.resources, for sessions
    # a crashed session is restarted and resumes this often (-1: always)
    max_restarts: int = checked(3, ge=-1)


@dataclass
class ServiceConfig:
    """``facestream serve``: where the API listens and what it accepts."""

    host: str = "127.0.0.1"        # loopback by default: exposing the API is a decision
    port: int = checked(8000, ge=1, le=65535)
    max_streams: int = checked(16, ge=1)  # POST /streams beyond this is refused with 429
    # streams run as tasks of one worker process (streamer/service/host.py) up to this
    # many a process; 1: a process per stream
    streams_per_host: int = checked(8, ge=1)
    # the host processes streams are spread over before any takes a second stream: a host's
    # Python runs on one core at a time, so four cameras in one host wait for each other
    # while a second core idles (docs/performance.md). None (auto): the Ray cluster's CPUs
    hosts: int | None = checked(None, ge=1)
    api_token_file: str | None = None  # bearer token required when set (or FACESTREAM_API_TOKEN)
    max_body_bytes: int = checked(65536, ge=1)  # larger request bodies are refused with 413
    stop_timeout_s: float = checked(30.0, gt=0)  # DELETE waits this long for a session to flush
    # an ended, stopped or failed stream leaves the list (and frees its name) this long
    # after it finished; 0: never (DELETE removes it)
    finished_ttl_s: float = checked(3600.0, ge=0)
    # Listening beyond loopback without an API token lets anyone who reaches the port
    # submit streams: refused unless this says so (`facestream serve --insecure-open-api`).
    insecure_open_api: bool = False


@dataclass
class ViewConfig:
    """The live view (streamer/view/): a web page beside the API, behind its token, that
    shows each stream's annotated frames and the last minutes of its curves.

    Frames are taken only while someone watches a stream: the page's server marks the
    stream watched in Redis, and its session, which looks for that mark at most twice a
    second, then leaves a small JPEG of a frame and its records there ``fps`` times a second.
    """

    port: int | None = checked(None, ge=0, le=65535)  # None: service.port + 1; 0: no live view
    fps: float = checked(4.0, gt=0, le=30)            # frames a second of a watched stream
    max_side: int = checked(640, ge=64, le=4096)      # the frames' longest side, in pixels
    jpeg_quality: int = checked(80, ge=10, le=95)
    watch_ttl_s: float = checked(5.0, gt=0)           # a stream stops sending this long after its last viewer
    history_s: float = checked(60.0, gt=0, le=3600)   # how far back the curves go


@dataclass
class AnnotateConfig:
    """``analyze --annotate``: how the annotated video is drawn and encoded (streamer/report/annotate.py)."""
    crf: int = checked(18, ge=0, le=51)  # libx264 quality (lower = better, bigger)
    preset: str = checked("veryfast", choices=X264_PRESETS)  # libx264 speed/size trade-off
    axis_scale: float = checked(0.5, gt=0)  # pose axis length as a fraction of the box width
    show_angles: bool = True       # yaw/pitch/roll text under the box
    use_quaternion: bool = True    # rotation from the smoothed quaternion (else from Euler)


@dataclass
class Config:
    media_root: str | None = None  # files the service may open (FACESTREAM_MEDIA_ROOT overrides)
    source: SourceConfig = field(default_factory=SourceConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    emotion: EmotionConfig = field(default_factory=EmotionConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    parquet: ParquetConfig = field(default_factory=ParquetConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    view: ViewConfig = field(default_factory=ViewConfig)


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Defaults, then the YAML file (if given or ``./ray_config.yaml`` exists), then overrides;
    checked by :func:`check`, so a bad value fails here and not in a stream later.

    ``overrides`` is a nested dict like the YAML, e.g. ``{"redis": {"url": "redis://..."}}``;
    the CLI builds it from its flags. A :class:`ConfigError` names the key's dotted path
    (and the file, when the mistake is in the file).
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
        try:
            check(_merge(cfg, data, ""))
        except ConfigError as e:
            raise ConfigError(f"{p}: {e}") from None
    if overrides:
        _merge(cfg, overrides, "")
    return check(cfg)


def check(cfg: Any, where: str = "") -> Any:
    """Hold every field of ``cfg`` (a config dataclass, walked into its sections) to its
    type and its limits; returns ``cfg``, each value now of its field's type.

    Types are strict: ``2.9`` or ``"3"`` for an integer is an error, not 2 or 3 (an integer
    where a number is expected becomes that float); a field typed with a ``StrEnum`` takes
    one of its values and becomes that member, so its choices are written once. Raises :class:`ConfigError` naming the
    key's dotted path.
    """
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value, path = getattr(cfg, f.name), f"{where}{f.name}"
        if dataclasses.is_dataclass(value):
            check(value, f"{path}.")
            continue
        value = _typed(value, hints[f.name], path)
        for item_path, item in _leaves(value, path):
            problem = _outside(item, f.metadata)
            if problem:
                raise ConfigError(f"{item_path}: {problem}")
        setattr(cfg, f.name, value)
    return cfg


def _merge(obj: Any, data: Any, where: str) -> Any:
    """Set the keys of ``data`` on ``obj``, section by section; a key ``obj`` lacks is an error."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where.rstrip('.') or 'config'}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{where}{key}' (known: {', '.join(sorted(names))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, f"{where}{key}.")
        else:
            setattr(obj, key, value)
    return obj


# accepted Python types and how a message names them, per scalar field type
_SCALARS: dict[type, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "true/false"), int: ((int,), "an integer"),
    float: ((int, float), "a number"), str: ((str,), "a string"),
}


def _typed(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the type ``hint`` names (scalars, ``X | None``, lists, str-keyed dicts)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = (a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        raise ConfigError(f"{where}: may not be null")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_typed(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _typed(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return _member(value, hint, where)
    accepted, name = _SCALARS[hint]
    if not isinstance(value, accepted) or (isinstance(value, bool) and hint is not bool):
        raise ConfigError(f"{where}: expected {name}, got {value!r}")
    return hint(value)


def _member(value: Any, vocabulary: type[StrEnum], where: str) -> StrEnum:
    """``value`` (a string) as the member of ``vocabulary`` it names; the error lists them all."""
    if isinstance(value, bool) and ("on" if value else "off") in {m.value for m in vocabulary}:
        value = "on" if value else "off"   # YAML 1.1 reads a bare on / off as a boolean
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    try:
        return vocabulary(value)
    except ValueError:
        raise ConfigError(f"{where}: expected one of {', '.join(vocabulary)}, got {value!r}") from None


def _leaves(value: Any, where: str) -> list[tuple[str, Any]]:
    """The scalars a field's limits apply to: the value, each item of a list, each value of a dict."""
    if value is None:
        return []
    if isinstance(value, list):
        return [(f"{where}[{i}]", v) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return [(f"{where}.{k}", v) for k, v in value.items()]
    return [(where, value)]


_BOUNDS = (("gt", operator.gt, ">"), ("ge", operator.ge, ">="), ("le", operator.le, "<="))


def _outside(value: Any, limits: Any) -> str | None:
    """What is wrong with ``value`` under a field's limits, or None."""
    choices = limits.get("choices")
    if choices is not None and value not in choices:
        return f"expected one of {', '.join(choices)}, got {value!r}"
    pattern = limits.get("pattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        return f"expected {limits.get('means', pattern)}, got {value!r}"
    for key, holds, sign in _BOUNDS:
        bound = limits.get(key)
        if bound is not None and not holds(value, bound):
            return f"must be {sign} {bound:g}, got {value!r}"
    return None
