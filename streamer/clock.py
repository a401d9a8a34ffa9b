"""Wall-clock timestamps as the service writes them into summaries and stream status:
UTC, ISO 8601, to the second — one format, so that every file and response compares."""
from __future__ import annotations

import datetime


def now_iso() -> str:
    """The current UTC time, e.g. ``2025-01-31T12:00:00+00:00``."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
