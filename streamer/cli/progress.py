"""Progress bars on stderr for the long commands: they show only on a terminal, so output
that is piped or logged carries no bar characters.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:   # imported where used: a mistyped command answers before any import
    from streamer.pipeline.status import StreamProgress


class ProgressBar:
    """tqdm bar fed with a session's ``StreamProgress``, as analyze hands it on; silent
    when stderr is not a terminal."""

    def __init__(self):
        self._bar = None

    def __call__(self, p: StreamProgress) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=p.frame_count_estimate, unit="frame",
                             desc="analyze", disable=None, dynamic_ncols=True)
        if p.frame_count_estimate and self._bar.total is None:
            self._bar.total = p.frame_count_estimate
        self._bar.update(p.frames - self._bar.n)
        self._bar.set_postfix(fps=f"{p.fps:.1f}", faces=p.faces, refresh=False)

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
