"""The ``facestream`` command.

Subcommands: ``analyze`` (a video through the whole pipeline), ``predict`` (images,
in-process, no Ray), ``report`` (HTML plots of an output dir), ``face-model`` (build the
derived face model); the service: ``serve``, and its clients ``submit``, ``streams``,
``stop``, ``tail``; ``publish`` (a file as a live RTSP/HTTP stream, to try things on). This is the only
place that prints; library code reports through return values, exceptions and injected callbacks.

A user's mistake ends with one line on stderr and a distinct exit status, never a
traceback; an internal error prints one line naming a log file that holds the traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

EXIT_CODES = """exit status:
  0  success
  1  internal error (the message names a log file with the traceback)
  2  bad usage or bad configuration
  3  an input file or directory does not exist
  4  an input is not a readable video or image
  5  no usable trained checkpoint
  6  Redis unreachable
  7  no face found in the whole input (outputs and summary are still written)
  8  the Ray cluster given by --address cannot be joined
  9  the service: cannot listen, cannot be reached, or refused the request
  130 interrupted"""


class UserError(Exception):
    """A mistake in what the user asked for; ``code`` is the exit status."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (status 2) instead of the usage block."""

    def error(self, message: str):
        raise UserError(f"{message} (see `{self.prog} --help`)", 2)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="facestream", description="Faces in video: 3D expression, head pose "
                     "and identity shape per tracked face.", epilog=EXIT_CODES,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    a = sub.add_parser("analyze", help="analyse a video file into Parquet + Redis",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("video")
    a.add_argument("--out", help="output directory (default: parquet.out of the config, 'out')")
    a.add_argument("--redis-url", help="publish to this Redis (default: an embedded server for the run)")
    a.add_argument("--address", help="join this Ray cluster (default: a private local one)")
    a.add_argument("--config", help="YAML config (default: ./ray_config.yaml if present)")
    a.add_argument("--checkpoint", help="regressor checkpoint (default: the shipped one)")
    rate = a.add_mutually_exclusive_group()
    rate.add_argument("--fps", type=_positive_float, help="process at most this many frames per second")
    rate.add_argument("--every", type=_positive_int, help="process every k-th frame")
    a.add_argument("--annotate", metavar="OUT.mp4", help="also write a video with the results drawn on it")
    a.add_argument("--stream-id", help="stream id in the outputs (default: the file name without suffix)")

    p = sub.add_parser("predict", help="faces in images, one line per face (no Ray)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="one JSON object per face")
    p.add_argument("--no-detect", action="store_true",
                   help="each image is already a face crop made with the checkpoint's crop rule")
    p.add_argument("--checkpoint", help="regressor checkpoint (default: the shipped one)")
    p.add_argument("--config", help="YAML config (default: ./ray_config.yaml if present)")

    r = sub.add_parser("report", help="write an HTML report of an output directory")
    r.add_argument("out_dir", metavar="DIR")

    fmp = sub.add_parser("face-model", help="build the derived face model; print its path, version and identity")
    fmp.add_argument("--migrate", nargs="+", metavar="CHECKPOINT",
                     help="rewrite older checkpoints' face-model record (byte hash) as this identity and fingerprint")

    sv = sub.add_parser("serve", help="run the stream service (REST API on Ray Serve) until Ctrl-C",
                        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sv.add_argument("--host", help="listen address (default: service.host, 127.0.0.1)")
    sv.add_argument("--port", type=int, help="listen port (default: service.port, 8000)")
    sv.add_argument("--address", help="join this Ray cluster (default: a private local one)")
    sv.add_argument("--config", help="YAML config (default: ./ray_config.yaml if present)")
    sv.add_argument("--redis-url", help="publish to this Redis (default: an embedded server)")
    sv.add_argument("--out", help="Parquet output directory (default: parquet.out of the config)")
    sv.add_argument("--media-root", help="directory whose files may be submitted (default: media_root)")
    sv.add_argument("--insecure-open-api", action="store_true",
                    help="allow listening beyond loopback without an API token: anyone who reaches the port "
                         "can submit streams (refused otherwise)")

    def client_args(p):
        p.add_argument("--server", help="service URL (default: $FACESTREAM_SERVER or http://127.0.0.1:8000)")

    sb = sub.add_parser("submit", help="start analysing a stream URL or a file under the media root")
    sb.add_argument("url")
    sb.add_argument("--name", help="stream id (default: derived from the URL)")
    sb.add_argument("--fps", type=_positive_float, help="process at most this many frames per second")
    sb.add_argument("--transport", choices=("tcp", "udp"), help="RTSP transport (default tcp)")
    client_args(sb)
    ls = sub.add_parser("streams", help="list the service's streams")
    ls.add_argument("--json", action="store_true")
    client_args(ls)
    st = sub.add_parser("stop", help="stop a stream (its outputs are flushed and closed)")
    st.add_argument("stream_id", metavar="ID")
    client_args(st)
    tl = sub.add_parser("tail", help="print a stream's records from Redis as they arrive")
    tl.add_argument("stream_id", metavar="ID")
    tl.add_argument("--json", action="store_true", help="one JSON object per record")
    tl.add_argument("--out", metavar="FILE.jsonl", help="append JSON lines to this file instead of printing")
    tl.add_argument("--follow", "-f", action="store_true", help="keep waiting after the stream has ended")
    tl.add_argument("--group", default=None, help="consumer group (default facestream-tail)")
    tl.add_argument("--consumer", default=None, help="consumer name (default tail-HOSTNAME)")
    tl.add_argument("--redis-url", help="Redis to read (default: the one the server reports)")
    client_args(tl)

    pb = sub.add_parser("publish", help="serve a video file as a live RTSP (or HTTP) stream, looping")
    pb.add_argument("video")
    pb.add_argument("--port", type=int, default=8554)
    pb.add_argument("--host", default="127.0.0.1")
    pb.add_argument("--http", action="store_true", help="HTTP MPEG-TS instead of RTSP")

    # Training-side commands take their own flags (see docs/training.md); they need
    # `make train-deps` for the teacher but not for training itself.
    for name, text in (("train", "train the regressor (python -m training.train --help)"),
                       ("evaluate", "measure a checkpoint's accuracy (docs/accuracy.md)")):
        t = sub.add_parser(name, help=text, add_help=False)
        t.add_argument("args", nargs=argparse.REMAINDER)
    return parser


# ---- analyze ---------------------------------------------------------------------------

class _ProgressBar:
    """tqdm bar fed with a session's progress (``StreamProgress.to_json()``, as analyze
    hands it on); silent when stderr is not a terminal."""

    def __init__(self):
        self._bar = None

    def __call__(self, progress: dict) -> None:
        from tqdm import tqdm

        from streamer.pipeline.status import StreamProgress

        p = StreamProgress.from_json(progress)
        if self._bar is None:
            self._bar = tqdm(total=p.frame_count_estimate, unit="frame",
                             desc="analyze", disable=None, dynamic_ncols=True)
        if p.frame_count_estimate and self._bar.total is None:
            self._bar.total = p.frame_count_estimate
        self._bar.update(p.frames - self._bar.n)
        self._bar.set_postfix(fps=f"{p.fps:.1f}", faces=p.faces, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class _FrameBar:
    """tqdm bar fed with (frames done, frames expected) counts, as annotate reports them;
    silent when stderr is not a terminal, gone once closed."""

    def __init__(self, desc: str):
        self._desc = desc
        self._bar: Any = None  # a tqdm bar once the first progress comes

    def __call__(self, done: int, total: int | None) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=total, unit="frame", desc=self._desc, disable=None, leave=False,
                             dynamic_ncols=True)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _analyze(args) -> int:
    from streamer.config import load_config
    from streamer.pipeline.analyze import analyze

    overrides: dict = {}
    if args.out:
        overrides.setdefault("parquet", {})["out"] = args.out
    if args.redis_url:
        overrides.setdefault("redis", {})["url"] = args.redis_url
    if args.checkpoint:
        overrides.setdefault("model", {})["checkpoint"] = args.checkpoint
    if args.fps is not None:
        overrides.setdefault("source", {})["fps"] = args.fps
    if args.every is not None:
        overrides.setdefault("source", {})["every"] = args.every
    cfg = load_config(args.config, overrides)
    bar, annotate_bar = _ProgressBar(), _FrameBar("annotate")
    def annotate(video: str, out: Path, stream_id: str) -> Path:
        from streamer.data.dataset import read_records
        from streamer.report.annotate import annotate_video
        return annotate_video(video, read_records(out, stream_id), Path(args.annotate), cfg, annotate_bar)
    try:
        summary = analyze(args.video, cfg, address=args.address, stream_id=args.stream_id,
                          annotate=annotate if args.annotate else None, on_progress=bar)
    finally:
        bar.close()
        annotate_bar.close()
    where = Path(summary["out"]) / "summary.json"
    if summary["faces"] == 0:
        raise UserError(f"no face found in {args.video} ({summary['frames']} frames analysed); "
                        f"summary: {where}", 7)
    persons = f" of {summary['persons']} persons" if summary.get("persons") else ""
    print(f"{summary['frames']} frames, {summary['faces']} faces in {summary['tracks']} tracks{persons} "
          f"at {summary['fps']:.1f} frames/s -> {summary['out']} (summary: {where})")
    if "annotated" in summary:
        print(f"annotated video: {summary['annotated']}")
    return 0


# ---- predict ---------------------------------------------------------------------------

def _read_image(path: str):
    import cv2

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: {'is not a regular file' if p.exists() else 'does not exist'}", 3)
    image = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path}: not a readable image", 4)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _whole_image_box(image, enlarge: float):
    """The box whose crop, under the checkpoint's rule, is exactly the (square) image."""
    import numpy as np

    h, w = image.shape[:2]
    side = max(h, w) / (1 + 2 * enlarge)
    cx, cy = w / 2, h / 2
    return np.array([[cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]], np.float32)


def _predict(args) -> int:
    from streamer.config import load_config

    cfg = load_config(args.config, {"model": {"checkpoint": args.checkpoint}} if args.checkpoint else None)
    images = [(path, _read_image(path)) for path in args.images]  # every input, before model imports

    import numpy as np

    from streamer.pipeline.backend import check_checkpoint
    from streamer.pipeline.session import pose_in_image
    from workers import emotion, face_model
    from workers.crops import CropRule
    from workers.pipeline import crop_boxes, detect_crop_regress, regress
    from workers.regressor import Regressor

    fm = face_model.load()
    ckpt, _ = check_checkpoint(cfg)
    regressor = Regressor.load(str(ckpt), cfg.model.device)
    rule = CropRule.from_meta(regressor.meta)
    detector = None
    if not args.no_detect:
        from workers.detector import FaceDetector
        from workers.padded_retry import PaddedRetry

        # a still may be a face and nothing else (a dataset crop): look again on a canvas
        detector = PaddedRetry(FaceDetector(cfg.detector, threads=os.cpu_count() or 1))
    from tqdm import tqdm

    found = 0
    # a bar on stderr for a folder of images; silent when stderr is not a terminal or for one image
    for path, image in tqdm(images, unit="image", desc="predict", disable=None if len(images) > 1 else True,
                            leave=False, dynamic_ncols=True):
        if detector is None:
            box = _whole_image_box(image, rule.enlarge)
            faces = regress([crop_boxes(image, box, np.ones(1, np.float32), rule)], regressor, rule)[0]
        else:
            faces = detect_crop_regress([image], detector, regressor, rule)[0]
        if not len(faces):
            continue
        boxes, scores, pred = faces.boxes, faces.scores, faces.prediction
        assert pred is not None  # faces were found and regressed
        poses = pose_in_image(pred, faces.affines)
        blends = fm.blendshapes_from_eta(pred.expression)  # one batched solve per image
        face_px = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        labels = emotion.label(pred.emotion_probs, face_px=face_px, yaw=poses[:, 0], pitch=poses[:, 1],
                               rule=cfg.emotion)
        for i in range(len(boxes)):
            face = _face_dict(path, boxes[i], scores[i], pred, poses[i], i)
            face["blendshapes"] = dict(zip(fm.blend_names, (round(float(w), 3) for w in blends[i])))
            face["emotion"] = labels[i]
            # null without a classifier beside the checkpoint (JSON has no NaN)
            face["emotion_probs"] = (dict(zip(emotion.CLASSES, (round(float(p), 4) for p in pred.emotion_probs[i])))
                                     if np.isfinite(pred.emotion_probs[i]).all() else None)
            tqdm.write(json.dumps(face) if args.json else _face_line(face, i))  # clears the bar first
        found += len(boxes)
    if not found:
        raise UserError(f"no face found in {len(images)} image(s)", 7)
    return 0


def _face_dict(path, box, score, pred, pose, i) -> dict:
    def floats(values) -> list[float]:
        return [round(float(v), 6) for v in values]

    yaw, pitch, roll, tx, ty, scale = floats(pose)
    return {"image": path, "box": floats(box), "score": round(float(score), 6),
            "expression": floats(pred.expression[i]),
            "pose": {"yaw": yaw, "pitch": pitch, "roll": roll, "tx": tx, "ty": ty, "scale": scale},
            "quaternion": floats(pred.quaternion[i]), "shape": floats(pred.shape[i])}


def _face_line(face: dict, i: int) -> str:
    p, b = face["pose"], face["box"]
    top = sorted(face["blendshapes"].items(), key=lambda kv: -kv[1])[:3]
    return (f"{face['image']} face {i}: box ({b[0]:.0f}, {b[1]:.0f}, {b[2]:.0f}, {b[3]:.0f}) "
            f"score {face['score']:.3f}  yaw {p['yaw']:+.1f} pitch {p['pitch']:+.1f} "
            f"roll {p['roll']:+.1f} deg  centre ({p['tx']:.1f}, {p['ty']:.1f}) px  "
            f"scale {p['scale']:.2f} px/cm  " + " ".join(f"{n} {w:.2f}" for n, w in top)
            + f"  emotion {face['emotion']}" + _top_prob(face["emotion"], face["emotion_probs"]))


def _top_prob(label: str, probs: dict | None) -> str:
    """" 0.83" after a class label; " (happy 0.35)" after an abstention: the most likely
    class and its probability, so an abstaining face still says what it looked like."""
    if not probs:
        return ""
    name, p = max(probs.items(), key=lambda kv: kv[1])
    return f" {p:.2f}" if name == label else f" ({name} {p:.2f})"


# ---- report, face-model ------------------------------------------------------------------

def _report(args) -> int:
    out = Path(args.out_dir)
    if not out.is_dir():
        raise UserError(f"{out}: no such output directory", 3)
    if not (out / "records").is_dir():
        raise UserError(f"{out}: not a facestream output directory (no records/ inside)", 3)
    from streamer.report.html import write_report

    print(write_report(out))
    return 0


def _face_model(args) -> int:
    from workers import face_model

    path = face_model.build()
    model = face_model.load(str(path))
    print(f"path: {path}\nversion: {model.version}\nsha256: {model.sha256}")
    for ckpt in args.migrate or ():
        from workers import checkpoint

        changed = checkpoint.migrate(ckpt)
        print(f"{'migrated' if changed else 'up to date'}: {ckpt}")
    return 0


def _plugin(args) -> int:
    """``train`` and ``evaluate`` live in the training layer, above everything served: they
    are found through the ``facestream.commands`` entry points, never imported from here."""
    from importlib.metadata import entry_points

    found = entry_points(group="facestream.commands", name=args.command)
    if not found:
        raise SystemExit(f"facestream {args.command}: the training layer is not installed (pip install -e .)")
    next(iter(found)).load()(args.args)
    return 0


# ---- the service and its clients ----------------------------------------------------------

def _serve(args) -> int:
    from streamer.config import load_config
    from streamer.service.server import check_exposure, serve_forever

    overrides: dict = {}
    for section, key, value in (("service", "host", args.host), ("service", "port", args.port),
                                ("redis", "url", args.redis_url), ("parquet", "out", args.out)):
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    if args.out:
        overrides["parquet"]["out"] = str(Path(args.out).resolve())
    if args.media_root:
        overrides["media_root"] = str(Path(args.media_root).resolve())
    if args.insecure_open_api:
        overrides.setdefault("service", {})["insecure_open_api"] = True
    cfg = load_config(args.config, overrides)
    config_path = str(Path(args.config).resolve()) if args.config else (
        str(Path("ray_config.yaml").resolve()) if Path("ray_config.yaml").exists() else None)

    def ready(info: dict) -> None:
        local = "allowed" if info["local_networks"] == "allow" else "refused"
        print(f"facestream serving on {info['url']}  (Redis {info['redis']}, Parquet {info['parquet_out']}, "
              f"media root {info['media_root'] or 'none: files refused'}, loopback/private sources {local}); "
              "Ctrl-C stops", flush=True)

    check_exposure(cfg)   # an exposed API without a token stops here, before anything starts
    print("facestream: starting Ray, the model replicas and the API ...", file=sys.stderr, flush=True)
    final = serve_forever(cfg, config_path=config_path, overrides=overrides, address=args.address,
                          on_ready=ready)
    print(f"facestream: stopped ({len(final)} streams: "
          + ", ".join(f"{k} {v}" for k, v in final.items()) + ")" if final else "facestream: stopped")
    return 0


def _client(args):
    from streamer.service.client import ApiClient

    return ApiClient(args.server)


def _status_line(body: dict) -> str:
    """One line for a stream's status (the API's body, read as a StreamStatus)."""
    from streamer.pipeline.status import StreamStatus

    s = StreamStatus.from_json(body)
    p = s.progress
    lag = f"{p.lag_s:.2f}s" if p.lag_s is not None else "-"
    err = f"  error: {s.last_error}" if s.last_error else ""
    return (f"{s.id:<24} {s.state:<10} frames {p.frames:>7}  faces {p.faces:>7}  "
            f"{p.processed_fps:5.1f} fps  lag {lag}  dropped {p.dropped_frames}  "
            f"reconnects {p.reconnects}  {s.url}{err}")


def _submit(args) -> int:
    from streamer.pipeline.status import StreamStatus

    options = {"transport": args.transport} if args.transport else None
    s = StreamStatus.from_json(_client(args).submit(args.url, name=args.name, fps=args.fps, options=options))
    print(s.id)
    print(f"submitted: {s.url} -> Redis stream {s.redis_stream}; "
          f"follow it with `facestream tail {s.id}`", file=sys.stderr)
    return 0


def _streams(args) -> int:
    streams = _client(args).streams()
    if args.json:
        print(json.dumps(streams, indent=2))
    elif not streams:
        print("no streams")
    for s in ([] if args.json else streams):
        print(_status_line(s))
    return 0


def _stop(args) -> int:
    print(_status_line(_client(args).stop(args.stream_id)))
    return 0


def _tail(args) -> int:
    from streamer.data.tail import DEFAULT_GROUP, prefix_for, record_json, record_line, tail

    redis_url, status = args.redis_url, None
    if redis_url is None:
        client = _client(args)
        status = client.stream(args.stream_id)  # an unknown id fails here, with the server's words
        redis_url = client.health().get("redis")
        if redis_url is None:
            raise UserError("the server does not tell its Redis address without the API token "
                            "(FACESTREAM_API_TOKEN): pass it, or --redis-url", 2)
        if "***" in redis_url:  # shown by streamer.sources.urls.redact: credentials or query values masked
            raise UserError("the server shows its Redis URL redacted (credentials or query values): "
                            "pass it with --redis-url", 2)
    sink = open(args.out, "a") if args.out else None
    try:
        def show(rec) -> None:
            if sink is not None:
                sink.write(json.dumps(record_json(rec)) + "\n")
            elif args.json:
                print(json.dumps(record_json(rec)), flush=True)
            else:
                print(record_line(rec), flush=True)

        n = tail(redis_url, args.stream_id, show, prefix=prefix_for(args.stream_id, status),
                 group=args.group or DEFAULT_GROUP,
                 consumer=args.consumer, follow=args.follow)
    finally:
        if sink is not None:
            sink.close()
    print(f"facestream: {n} records from {args.stream_id}", file=sys.stderr)
    return 0


def _publish(args) -> int:
    from streamer.sources.frames import SourceNotFound
    from streamer.testbed import HttpTsServer, RtspServer

    if not Path(args.video).is_file():
        raise SourceNotFound(f"{args.video}: does not exist")
    kind = HttpTsServer if args.http else RtspServer
    with kind(args.video, host=args.host, port=args.port) as server:
        print(f"publishing {args.video} at {server.url} (looping; Ctrl-C stops)", flush=True)
        while True:
            time.sleep(3600)


_COMMANDS = {"analyze": _analyze, "predict": _predict, "report": _report, "face-model": _face_model,
             "train": _plugin, "evaluate": _plugin, "serve": _serve, "submit": _submit,
             "streams": _streams, "stop": _stop, "tail": _tail, "publish": _publish}


# ---- errors ------------------------------------------------------------------------------

# (module, exception class, exit status); the first match wins, so subclasses come first
_USER_ERRORS = (
    ("streamer.config", "ConfigError", 2),
    ("streamer.sources.frames", "SourceNotFound", 3),
    ("streamer.sources.frames", "SourceError", 4),
    ("workers.checkpoint", "CheckpointError", 5),
    ("streamer.data.sinks.base", "SinkError", 6),
    ("streamer.pipeline.redis_server", "RedisServerError", 6),
    ("streamer.pipeline.runtime", "RuntimeStartError", 8),
    ("streamer.service.server", "OpenApiRefused", 2),
    ("streamer.service.server", "ServeError", 9),
    ("streamer.service.client", "ApiClientError", 9),
    ("redis.exceptions", "ConnectionError", 6),
)


def _exit_code(error: BaseException) -> int | None:
    """The exit status of a user-facing error, or None for an internal one.

    Classes are looked up among the modules already imported: an error cannot come from
    a module that never ran, and importing one here (torch, Ray) would only cost time.
    """
    if isinstance(error, UserError):
        return error.code
    for module, name, code in _USER_ERRORS:
        kind = getattr(sys.modules.get(module), name, None)
        if kind is not None and isinstance(error, kind):
            return code
    return None


def _log_internal_error(error: BaseException) -> Path:
    log = Path(tempfile.gettempdir()) / f"facestream-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    log.write_text(f"facestream {' '.join(sys.argv[1:])}\n\n"
                   + "".join(traceback.format_exception(error)))
    return log


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] in (["train"], ["evaluate"]):  # their flags are their own (argparse's
            return _plugin(argparse.Namespace(command=argv[0], args=argv[1:]))  # REMAINDER drops them)
        args = build_parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("facestream: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `facestream tail ID | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # the one place that turns errors into messages
        code = _exit_code(error)
        if code is not None:
            print(f"facestream: error: {_one_line(error)}", file=sys.stderr)
            return code
        log = _log_internal_error(error)
        print(f"facestream: internal error: {type(error).__name__}: {_one_line(error)} (traceback in {log})",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
