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


def test_a_data_dir_keeps_the_data_and_one_server_at_a_time(tmp_path):
    import signal
    import subprocess
    import sys

    from streamer.pipeline.redis_server import RedisServerError

    data = tmp_path / "redis"
    with EmbeddedRedis(data_dir=data) as server:
        client = redis.Redis.from_url(server.url)
        client.xadd("s", {"a": "1"})
        client.close()
        with pytest.raises(RedisServerError, match="in use by the Redis of a running process"):
            EmbeddedRedis(data_dir=data)      # a second service on the same directory
    assert (data / "appendonly.aof").is_file()
    # its starter killed (SIGKILL: no atexit, no stop): the next server takes the data over
    starter = (f"import os, signal, redis\nfrom streamer.pipeline.redis_server import EmbeddedRedis\n"
               f"s = EmbeddedRedis(data_dir={str(data)!r})\nredis.Redis.from_url(s.url).xadd('s', {{'a': '2'}})\n"
               f"os.kill(os.getpid(), signal.SIGKILL)\n")
    assert subprocess.run([sys.executable, "-c", starter]).returncode == -signal.SIGKILL
    with EmbeddedRedis(data_dir=data) as server:
        client = redis.Redis.from_url(server.url)
        assert [f[b"a"] for _, f in client.xrange("s")] == [b"1", b"2"]
        client.close()
    assert data.is_dir()                      # a data dir outlives its server
