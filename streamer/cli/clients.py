"""The service's clients: ``submit``, ``streams``, ``stop``, ``restart`` over its REST API, and ``tail``
and ``events``, which read a stream's records and the streams' events from the Redis the
service reports.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

from streamer.cli.errors import UserError

if TYPE_CHECKING:   # imported where used: a mistyped command answers before any import
    from streamer.pipeline.status import StreamStatus
    from streamer.service.client import ApiClient

# a stream's state on the server, read again at most this often while a tail waits
_STATUS_EVERY_S = 2.0
_FINAL_STATES = ("ended", "stopped", "failed")


def server_url(given: str | None) -> str | None:
    """``--server`` or ``$FACESTREAM_SERVER`` as a URL: ``host:port`` without a scheme
    means http://; a scheme other than http(s) is a usage error (not an internal one)."""
    server = given or os.environ.get("FACESTREAM_SERVER")
    if not server:
        return None
    if "://" not in server:
        return "http://" + server
    if not server.lower().startswith(("http://", "https://")):
        raise UserError(f"--server {server}: the service is reached over http:// or https://", 2)
    return server


def _client(args) -> ApiClient:
    from streamer.service.client import ApiClient

    return ApiClient(server_url(args.server))


_COLUMNS = ("ID", "STATE", "FRAMES", "FACES", "FPS", "LAG", "DROPPED", "RECONNECTS", "URL")


def _row(s: StreamStatus) -> tuple[str, ...]:
    p = s.progress
    return (s.id, str(s.state), str(p.frames), str(p.faces), f"{p.processed_fps:.1f}",
            f"{p.lag_s:.2f}s" if p.lag_s is not None else "-", str(p.dropped_frames), str(p.reconnects),
            s.url + (f"  error: {s.last_error}" if s.last_error else ""))


def _table(bodies: list[dict]) -> str:
    """Streams (the API's bodies, read as StreamStatus) under a header row; columns as
    wide as their widest cell, numbers right-aligned, the URL (and error) last."""
    from streamer.pipeline.status import StreamStatus

    rows = [_COLUMNS] + [_row(StreamStatus.from_json(body)) for body in bodies]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS) - 1)]
    lines = []
    for r in rows:
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells + [r[-1]]))
    return "\n".join(lines)


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
    else:
        print(_table(streams))
    return 0


def stop_command(args) -> int:
    status = _client(args).stop(args.stream_id)
    print(_table([status]))
    if status.get("removed"):
        print(f"{args.stream_id} was over: removed from the list, its name is free again "
              "(its records stay until a new stream takes the name)")
    return 0


def restart_command(args) -> int:
    """A stopped or failed stream again: same id, URL and options, after its last record."""
    print(_table([_client(args).restart(args.stream_id)]))
    return 0


def _redis_url(args, client: ApiClient) -> str:
    """``--redis-url``, else the Redis the server reports (with the token)."""
    if args.redis_url:
        return args.redis_url
    redis_url = client.health().get("redis")
    if redis_url is None:
        raise UserError("the server does not tell its Redis address without the API token "
                        "(FACESTREAM_API_TOKEN): pass it, or --redis-url", 2)
    if "***" in redis_url:  # shown by streamer.sources.urls.redact: credentials or query values masked
        raise UserError("the server shows its Redis URL redacted (credentials or query values): "
                        "pass it with --redis-url", 2)
    return redis_url


class _ServerState:
    """The stream's state as the server reports it, asked again at most every few
    seconds: a tail's second judge of the end, for a stream that failed before it could
    write its final event."""

    def __init__(self, client: ApiClient, stream_id: str, status: dict):
        self._client, self._id, self.status = client, stream_id, status
        self._asked = time.monotonic()

    def over(self) -> bool:
        if time.monotonic() - self._asked >= _STATUS_EVERY_S:
            self.status, self._asked = self._client.stream(self._id), time.monotonic()
        return self.status.get("state") in _FINAL_STATES


def tail_command(args) -> int:
    from streamer.data.tail import DEFAULT_GROUP, prefix_for, record_json, record_line, stream_end, tail

    server: _ServerState | None = None
    redis_url = args.redis_url
    if redis_url is None:   # the server knows the stream, its Redis and its key prefix
        client = _client(args)
        status = client.stream(args.stream_id)  # an unknown id fails here, with the server's words
        server, redis_url = _ServerState(client, args.stream_id, status), _redis_url(args, client)
    prefix = prefix_for(args.stream_id, server.status if server else None)
    group = args.group or (DEFAULT_GROUP if args.consumer else None)   # a consumer is a group's member
    sink = open(args.out, "a") if args.out else None
    try:
        def show(rec) -> None:
            if sink is not None:
                sink.write(json.dumps(record_json(rec)) + "\n")
            elif args.json:
                print(json.dumps(record_json(rec)), flush=True)
            else:
                print(record_line(rec), flush=True)

        n = tail(redis_url, args.stream_id, show, prefix=prefix, group=group, consumer=args.consumer,
                 follow=args.follow, ended=server.over if server else None)
    finally:
        if sink is not None:
            sink.close()
    reason = _failure(stream_end(redis_url, prefix, args.stream_id), server)
    if reason is not None:
        raise UserError(f"stream {args.stream_id} failed ({n} records): {reason}", 11)
    print(f"facestream: {n} records from {args.stream_id}", file=sys.stderr)
    return 0


def _failure(final: dict[str, Any] | None, server: _ServerState | None) -> str | None:
    """Why the stream failed, or None if it did not: its final event's error, else the
    server's last error for a stream it reports failed."""
    if final is not None and final["kind"] == "failed":
        return str(final.get("error") or "no reason given")
    if final is None and server is not None and server.status.get("state") == "failed":
        return str(server.status.get("last_error") or "no reason given")
    return None


def _any_status(client: ApiClient, stream_id: str | None) -> dict | None:
    """A status that shows the server's Redis key prefix: the stream's, else any stream's
    (a stream removed from the server still has its events in Redis)."""
    from streamer.service.client import ApiClientError

    if stream_id:
        try:
            return client.stream(stream_id)
        except ApiClientError as e:
            if e.status != 404:
                raise
    return next(iter(client.streams()), None)


def events_command(args) -> int:
    from streamer.data.event_log import read_events
    from streamer.data.events import EventKind
    from streamer.data.tail import prefix_for

    client = _client(args)
    status = None if args.redis_url else _any_status(client, args.stream)
    prefix = prefix_for(status["id"] if status else "", status)
    redis_url = _redis_url(args, client)
    skip = () if args.progress else (EventKind.PROGRESS,)
    show: Callable[[Any], None] = ((lambda e: print(json.dumps(e.to_json()), flush=True)) if args.json
                                   else (lambda e: print(e.line(), flush=True)))
    n = read_events(redis_url, show, prefix=prefix, stream_id=args.stream, skip=skip, follow=args.follow)
    print(f"facestream: {n} events", file=sys.stderr)
    return 0
