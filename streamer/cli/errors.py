"""What a user's mistake is, and the exit status each error ends with.

The statuses are part of the command's interface (scripts test them), so they are listed
once, in :data:`EXIT_CODES`, which the help prints, and every error is mapped to one here.
"""
from __future__ import annotations

import sys

EXIT_CODES = """exit status:
  0  success
  1  internal error (the message names a log file with the traceback)
  2  bad usage or bad configuration
  3  an input file or directory does not exist
  4  an input is not a readable video or image
  5  no usable trained checkpoint
  6  Redis unreachable
  7  no face found in the whole input (outputs and summary are still written)
  8  the Ray cluster given by --address cannot be joined, or has no room for the replicas
  9  the service: cannot listen, cannot be reached, or refused the request
  10 a live source is unreachable (no frame within source.give_up_s) or refuses the stream (401, 403, 404)
  11 the stream failed (tail: the reason is printed)
  130 interrupted"""


class UserError(Exception):
    """A mistake in what the user asked for; ``code`` is the exit status."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


# (module, exception class, exit status); the first match wins, so subclasses come first
_USER_ERRORS = (
    ("streamer.config", "ConfigError", 2),
    ("streamer.sources.frames", "SourceNotFound", 3),
    ("streamer.sources.frames", "SourceUnreachable", 10),
    ("streamer.sources.frames", "SourceError", 4),
    ("workers.checkpoint", "CheckpointError", 5),
    ("streamer.data.sinks.base", "SinkError", 6),
    ("streamer.pipeline.redis_server", "RedisServerError", 6),
    ("streamer.pipeline.runtime", "RuntimeStartError", 8),
    ("streamer.pipeline.replicas", "NoRoomForReplicas", 8),
    ("streamer.service.server", "OpenApiRefused", 2),
    ("streamer.service.server", "ServeError", 9),
    ("streamer.service.client", "ApiClientError", 9),
    ("redis.exceptions", "ConnectionError", 6),
)


def exit_code(error: BaseException) -> int | None:
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
