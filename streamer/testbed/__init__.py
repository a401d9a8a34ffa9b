"""Test bed: a video file published as a live stream on this machine, for tests, benchmarks and demos.

Live sources have to be tested against the protocol stacks users point the service at,
and users need a way to try the service without a camera (``facestream publish``). None
of this runs in the service itself: it plays the camera's part.

- :class:`RtspServer` (:mod:`.rtsp`): RTSP 1.0 with RTP per RFC 6184, interleaved or UDP.
- :class:`HttpTsServer` (:mod:`.http_ts`): ``GET /stream.ts``, an endless MPEG-TS.
- :mod:`.publisher`: the file decoded in real time and encoded once for every client;
  :mod:`.server`: the threaded TCP server both protocols share.
"""
from streamer.testbed.http_ts import HttpTsServer
from streamer.testbed.rtsp import RtspServer

__all__ = ["HttpTsServer", "RtspServer"]
