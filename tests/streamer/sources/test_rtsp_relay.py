"""streamer.sources.rtsp: what the relay reads of the server's bytes on their way to FFmpeg."""
from __future__ import annotations

import pytest

from streamer.config import SourceConfig
from streamer.sources.gateway import Gateway
from streamer.sources.netpolicy import NetworkPolicy
from streamer.sources.rtsp import _RtspReplies
from streamer.sources.urls import SourceRefused


def _rtp(channel: int, payload: bytes) -> bytes:
    return b"$" + bytes([channel]) + len(payload).to_bytes(2, "big") + payload


def _replies() -> tuple[_RtspReplies, Gateway]:
    gateway = Gateway(NetworkPolicy.from_config(SourceConfig()))
    return _RtspReplies(gateway), gateway


def test_whole_messages_pass_in_order_however_the_reads_cut_them():
    reply = b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nContent-Length: 5\r\n\r\nv=0\r\n"
    packets = [_rtp(k % 2, bytes([k]) * (100 + k)) for k in range(60)]
    stream = reply + b"".join(packets) + reply
    for cut in (1, 7, 512, 65536):      # byte by byte up to one read of it all
        replies, gateway = _replies()
        out = b"".join(replies.feed(stream[i:i + cut]) for i in range(0, len(stream), cut))
        assert out == stream
    replies, _ = _replies()
    assert replies.feed(stream[:len(reply) + 3]) == reply         # a packet's first bytes wait for the rest
    assert replies.feed(stream[len(reply) + 3:len(reply) + 104]) == packets[0]
    assert gateway.rejection is None                              # a 200 is no rejection


def test_a_final_answer_is_noted_and_a_redirect_refused_wherever_it_falls_in_a_read():
    replies, gateway = _replies()
    replies.feed(_rtp(0, b"x" * 30) + b"RTSP/1.0 404 Not Found\r\nCSeq: 4\r\n\r\n")
    assert gateway.rejection == "404 Not Found"
    replies, gateway = _replies()
    with pytest.raises(SourceRefused, match="redirected .302. to rtsp://elsewhere"):
        replies.feed(_rtp(0, b"y" * 40) + b"RTSP/1.0 302 Found\r\nLocation: rtsp://elsewhere/cam\r\n\r\n")
    replies, _ = _replies()
    with pytest.raises(SourceRefused, match="malformed"):
        replies.feed(b"RTSP/1.0 200 OK\r\n" + b"X: y\r\n" * 20000)   # a head that never ends
