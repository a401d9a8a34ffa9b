"""EmbeddedRedis: a private server that restarts on its port and leaves nothing behind."""
from __future__ import annotations

import os

import pytest
import redis

from streamer.pipeline.redis_server import EmbeddedRedis


def test_restart_keeps_port_and_optionally_data_and_stop_ends_the_process():
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        url = server.url
        server.restart(keep_data=True)
        assert server.url == url and client.get("k") == b"v"
        server.restart(keep_data=False)
        assert client.get("k") is None
        client.close()
        pid, data_dir = server._proc.pid, server._dir
    assert not server.running and not data_dir.exists()
    with pytest.raises(ProcessLookupError):   # terminated and reaped
        os.kill(pid, 0)
