"""The error a Ray call really failed with, out of the wrappers around it.

A task or actor method that raises reaches its caller as a ``RayTaskError`` holding the
original as ``cause``; an actor whose constructor raised fails every call with a
``RayActorError`` carrying that ``RayTaskError`` among its arguments; an ``asyncio``
TaskGroup wraps what its tasks raise in exception groups. Callers report and re-raise
the original, so that a user sees ``SourceNotFound: ...``, not three layers of wrapping.
"""
from __future__ import annotations

import ray


def root_cause(error: BaseException) -> BaseException:
    """The first error inside ``error``'s exception groups and Ray wrappers (``error``
    itself when it wraps nothing)."""
    while True:
        if isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        elif isinstance(error, ray.exceptions.RayTaskError) and isinstance(error.cause, BaseException):
            error = error.cause
        elif isinstance(error, ray.exceptions.RayActorError):
            failed = next((a for a in error.args if isinstance(a, ray.exceptions.RayTaskError)), None)
            if failed is None or not isinstance(failed.cause, BaseException):
                return error
            error = failed.cause
        else:
            return error
