"""``publish``: a video file served as a looping live RTSP (or HTTP) stream, to try the
service and ``analyze`` on a live source without a camera.
"""
from __future__ import annotations

import time
from pathlib import Path


def publish_command(args) -> int:
    from streamer.sources.frames import SourceNotFound
    from streamer.testbed import HttpTsServer, RtspServer

    if not Path(args.video).is_file():
        raise SourceNotFound(f"{args.video}: does not exist")
    kind = HttpTsServer if args.http else RtspServer
    with kind(args.video, host=args.host, port=args.port) as server:
        print(f"publishing {args.video} at {server.url} (looping; Ctrl-C stops)", flush=True)
        while True:
            time.sleep(3600)
