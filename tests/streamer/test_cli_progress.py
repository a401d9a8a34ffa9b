"""What ``analyze`` says on stderr about a live source: each connection attempt, and each
change of its reconnect count or last error while it runs (terminal or not)."""
from __future__ import annotations

from streamer.cli.progress import ProgressBar, SourceAttempts
from streamer.pipeline.status import StreamProgress, StreamState


def test_attempts_and_reconnects_are_lines_on_stderr(capsys):
    attempts = SourceAttempts("rtsp://cam/x")
    attempts("reconnecting", {"attempt": 1, "delay_s": 0.5, "error": "Connection refused"})
    attempts("reconnected", {"attempt": 2, "down_s": 1.25})
    bar = ProgressBar("rtsp://cam/x")
    running = StreamProgress(state=StreamState.RUNNING, live=True, frames=10)
    bar(running)                                       # nothing to say yet
    bar(StreamProgress(state=StreamState.RUNNING, live=True, frames=20, last_error="no data for 5 s"))
    bar(StreamProgress(state=StreamState.RUNNING, live=True, frames=20, last_error="no data for 5 s"))
    bar(StreamProgress(state=StreamState.RUNNING, live=True, frames=30, reconnects=1, last_error="no data for 5 s"))
    bar.close()
    file_bar = ProgressBar()
    file_bar(StreamProgress(state=StreamState.RUNNING, frames=5, last_error="a decode error"))   # files: the bar only
    file_bar.close()
    assert capsys.readouterr().err.splitlines() == [
        "facestream: rtsp://cam/x: attempt 1 failed: Connection refused; trying again in 0.5 s",
        "facestream: rtsp://cam/x: connected after 1.2 s",
        "facestream: rtsp://cam/x: reconnects 0, last error: no data for 5 s",
        "facestream: rtsp://cam/x: reconnects 1, last error: no data for 5 s",
    ]
