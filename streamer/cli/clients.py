"""The service's clients: ``submit``, ``streams``, ``stop`` over its REST API, and ``tail``,
which reads a stream's records from the Redis the service reports.
"""
from __future__ import annotations

import json
import sys

from streamer.cli.errors import UserError


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


def submit_command(args) -> int:
    from streamer.pipeline.status import StreamStatus

    options = {"transport": args.transport} if args.transport else None
    s = StreamStatus.from_json(_client(args).submit(args.url, name=args.name, fps=args.fps, options=options))
    print(s.id)
    print(f"submitted: {s.url} -> Redis stream {s.redis_stream}; "
          f"follow it with `facestream tail {s.id}`", file=sys.stderr)
    return 0


def streams_command(args) -> int:
    streams = _client(args).streams()
    if args.json:
        print(json.dumps(streams, indent=2))
    elif not streams:
        print("no streams")
    for s in ([] if args.json else streams):
        print(_status_line(s))
    return 0


def stop_command(args) -> int:
    print(_status_line(_client(args).stop(args.stream_id)))
    return 0


def tail_command(args) -> int:
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
