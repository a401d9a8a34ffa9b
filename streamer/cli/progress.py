"""Progress bars on stderr for the long commands: they show only on a terminal, so output
that is piped or logged carries no bar characters.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:   # imported where used: a mistyped command answers before any import
    from streamer.pipeline.status import StreamProgress


def _say(line: str) -> None:
    """One line on stderr, above a bar that may be showing (tqdm redraws it below)."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


class SourceAttempts:
    """A live source's connection attempts, one stderr line each, as analyze hands them on
    while it opens the source: a camera that does not answer is visibly retried instead
    of leaving the command silent until ``source.give_up_s``. Printed on a terminal or not."""

    def __init__(self, label: str):
        self._label = label

    def __call__(self, kind: str, info: dict) -> None:
        if kind == "reconnecting":
            _say(f"facestream: {self._label}: attempt {info.get('attempt')} failed: {info.get('error')}; "
                 f"trying again in {info.get('delay_s', 0):.1f} s")
        elif kind == "reconnected":
            _say(f"facestream: {self._label}: connected after {info.get('down_s', 0):.1f} s")


class ProgressBar:
    """tqdm bar fed with a session's ``StreamProgress``, as analyze hands it on; silent
    when stderr is not a terminal. For a live source, each change of its reconnect count
    or last error is also a line on stderr (``label`` names the source there), terminal or not."""

    def __init__(self, label: str = "source"):
        self._bar: Any = None  # a tqdm bar once the first progress comes
        self._label = label
        self._source_state: tuple[int, str | None] = (0, None)

    def __call__(self, p: StreamProgress) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=p.frame_count_estimate, unit="frame",
                             desc="analyze", disable=None, dynamic_ncols=True)
        if p.frame_count_estimate and self._bar.total is None:
            self._bar.total = p.frame_count_estimate
        self._bar.update(p.frames - self._bar.n)
        self._bar.set_postfix(fps=f"{p.fps:.1f}", faces=p.faces, refresh=False)
        if p.live and (p.reconnects, p.last_error) != self._source_state:
            self._source_state = (p.reconnects, p.last_error)
            error = f", last error: {p.last_error}" if p.last_error else ""
            _say(f"facestream: {self._label}: reconnects {p.reconnects}{error}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class FrameBar:
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
