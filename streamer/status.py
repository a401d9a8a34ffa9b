"""Where a stream is in its life: one set of names from the session to the API.

The session reports its state in ``progress()``, the manager keeps it per stream and
answers the API with it, ``/metrics`` counts streams by it and the benchmarks wait on
it. A ``StrEnum``, so that each state is also the plain string clients have always read
(``"running"``), in JSON, in Prometheus labels and in comparisons.
"""
from __future__ import annotations

from enum import StrEnum


class StreamState(StrEnum):
    CREATED = "created"          # the session exists, run() has not been called
    CONNECTING = "connecting"    # models, sinks and the source are being set up
    RUNNING = "running"          # frames flow
    STOPPING = "stopping"        # a stop was asked; in-flight frames are being published
    ENDED = "ended"              # the source ran out
    STOPPED = "stopped"          # stopped on request, sinks flushed
    FAILED = "failed"            # see the stream's error

    @property
    def active(self) -> bool:
        """Still holding a stream slot (not finished)."""
        return self in ACTIVE


# What a service's stream can be in, in the order /metrics lists them (the manager lists a
# stream from the moment it launches the session, so never as "created").
SERVICE_STATES = (StreamState.CONNECTING, StreamState.RUNNING, StreamState.STOPPING,
                  StreamState.ENDED, StreamState.STOPPED, StreamState.FAILED)
ACTIVE = frozenset(SERVICE_STATES[:3])
