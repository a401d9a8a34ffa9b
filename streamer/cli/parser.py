"""Every ``facestream`` command, flag and help text: the argparse tree, and nothing that runs.
"""
from __future__ import annotations

import argparse
import textwrap

from streamer.cli.errors import EXIT_CODES, UserError


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
    sv.add_argument("--view-port", type=int, metavar="PORT",
                    help="the live view's port in the browser (default: view.port, the API's port + 1; 0: none)")
    sv.add_argument("--address", help="join this Ray cluster (default: a private local one)")
    sv.add_argument("--config", help="YAML config (default: ./ray_config.yaml if present)")
    sv.add_argument("--redis-url", help="publish to this Redis (default: an embedded server)")
    sv.add_argument("--out", help="Parquet output directory (default: parquet.out of the config)")
    sv.add_argument("--media-root", help="directory whose files may be submitted (default: media_root)")
    sv.add_argument("--insecure-open-api", action="store_true",
                    help="allow listening beyond loopback without an API token: anyone who reaches the port "
                         "can submit streams (refused otherwise)")

    def client_args(p):
        p.add_argument("--server", help="service URL, or HOST:PORT for http://HOST:PORT "
                                        "(default: $FACESTREAM_SERVER or http://127.0.0.1:8000)")

    sb = sub.add_parser("submit", help="start analysing a stream URL or a file under the media root")
    sb.add_argument("url")
    sb.add_argument("--name", help="stream id (default: derived from the URL)")
    sb.add_argument("--fps", type=_positive_float, help="process at most this many frames per second")
    sb.add_argument("--transport", choices=("tcp", "udp"), help="RTSP transport (default tcp)")
    client_args(sb)
    ls = sub.add_parser("streams", help="list the service's streams")
    ls.add_argument("--json", action="store_true")
    client_args(ls)
    st = sub.add_parser("stop", help="stop a stream (its outputs are flushed and closed); "
                                     "a stream that is over is removed from the list")
    st.add_argument("stream_id", metavar="ID")
    client_args(st)
    rs = sub.add_parser("restart", help="start a stopped or failed stream again (same id and options, "
                                        "after its last record)")
    rs.add_argument("stream_id", metavar="ID")
    client_args(rs)
    tl = sub.add_parser("tail", help="print a stream's records from Redis, from its start, as they arrive",
                        description=textwrap.fill(
                            "Print a stream's records from its start, then as they arrive, until the stream "
                            "ends (exit 0) or fails (its reason on stderr, exit 11). Every run reads every "
                            "record; with --group, Redis remembers what the group was given: a re-run "
                            "resumes after it, and the group's consumers share the records out.", 88),
                        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    tl.add_argument("stream_id", metavar="ID")
    tl.add_argument("--json", action="store_true", help="one JSON object per record")
    tl.add_argument("--out", metavar="FILE.jsonl", help="append JSON lines to this file instead of printing")
    tl.add_argument("--follow", "-f", action="store_true", help="keep waiting after the stream has ended")
    tl.add_argument("--group", default=None, metavar="NAME",
                    help="read as a member of this consumer group (records are acknowledged once printed)")
    tl.add_argument("--consumer", default=None, metavar="NAME",
                    help="consumer name in the group (default tail-HOSTNAME; alone it implies "
                         "--group facestream-tail)")
    tl.add_argument("--redis-url", help="Redis to read (default: the one the server reports)")
    client_args(tl)
    ev = sub.add_parser("events", help="print the streams' events (started, reconnecting, failed ...) from Redis",
                        description=textwrap.fill(
                            "Print the events on PREFIX:events (every stream's lifecycle: started, cut, "
                            "person, reconnecting, reconnected, ended, stopped, failed ...), one line each: "
                            "time (UTC), stream, kind, details. Prints what is there and exits; --follow "
                            "keeps waiting for new ones until Ctrl-C.", 88),
                        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("--stream", metavar="ID", help="only this stream's events")
    ev.add_argument("--follow", "-f", action="store_true", help="keep waiting for new events")
    ev.add_argument("--json", action="store_true", help="one JSON object per event")
    ev.add_argument("--progress", action="store_true",
                    help="include the progress events (one per stream every session.progress_every_s)")
    ev.add_argument("--redis-url", help="Redis to read (default: the one the server reports)")
    client_args(ev)

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
