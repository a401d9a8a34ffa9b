"""Starting or joining the Ray cluster a run works in.

Two cases, one entry point (:func:`start`):

* **private local cluster** (no address): Ray's state goes under a fresh directory in the
  system temp dir and is removed by :meth:`RayRuntime.stop`. Ray 2.60 turns token auth
  on for new local clusters and would write the token to ``~/.ray/auth_token``; we keep
  token auth on but generate the token ourselves inside the private directory and point
  Ray at it (``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN_PATH``). A run then neither
  depends on nor writes to the user's home, and nothing listens unauthenticated. Ray's
  processes inherit the environment, so they all read the same token; so does a child
  process (a test's CLI run) that joins this cluster with ``--address``.
  A private cluster is also private on the network: every Ray process listens on
  127.0.0.1 only (Ray binds its gRPC servers, the dashboard agent and the metrics export
  to loopback when the node address is 127.0.0.1, which it picks on Linux only when told
  that this is not a cluster: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``), sends no usage
  statistics (``RAY_USAGE_STATS_ENABLED=0``) and asks no cloud metadata server what
  it runs on. That last one has no switch in Ray 2.60: its dashboard process, even
  without the dashboard, asks 169.254.169.254 (Azure, AWS) and looks up
  ``metadata.google.internal`` (GCP) before it checks whether usage stats are on
  (``usage_stats_head.run`` → ``usage_lib.get_cluster_config_to_report``). So the
  cluster's processes are given an HTTP proxy that is not there (``http_proxy`` =
  127.0.0.1:9, loopback excepted by ``no_proxy``): those requests fail on loopback at
  once, without a lookup or a packet leaving. Nothing of ours uses the environment's
  proxy in those processes (the sources' gateway makes its own connections, Redis is not
  HTTP, Ray's own connections are to loopback), and this process gets its variables
  back as soon as Ray has started.
* **existing cluster** (``address``): joined as it is; its own auth settings apply and
  nothing is created or removed.

Ray allows one connection per process, so a process that is already connected (a test
session, a notebook that called ``ray.init``) keeps its connection: :func:`start` then
borrows it, and :meth:`RayRuntime.stop` leaves it open. A private cluster's
:meth:`RayRuntime.stop` puts the environment back as it found it.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import ray

_AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")
# What a private cluster's processes inherit, for as long as it runs (see the module doc).
_PRIVATE_VARS = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# ... and what they inherit but this process gets back once they have started.
_NOWHERE_PROXY = "http://127.0.0.1:9"   # the discard port: nothing listens, a connection is refused at once
_START_VARS = {"http_proxy": _NOWHERE_PROXY, "HTTP_PROXY": _NOWHERE_PROXY,
               "no_proxy": "127.0.0.1,localhost,::1", "NO_PROXY": "127.0.0.1,localhost,::1"}


class RuntimeStartError(RuntimeError):
    """Ray could not be started, or the cluster named by an address could not be joined."""


@dataclass
class RayRuntime:
    """A live connection to a Ray cluster; ``stop()`` (or ``with``) ends it."""

    address: str                    # GCS address; pass as --address to join this cluster
    owned: bool                     # True: a private cluster this runtime started
    connected: bool = True          # False: borrowed a connection the process already had
    temp_dir: Path | None = None    # the private cluster's state, removed on stop
    _saved_env: dict = field(default_factory=dict, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Disconnect unless borrowed; a private cluster is also shut down and its
        directory removed. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.connected and ray.is_initialized():
            ray.shutdown()
        if self.owned:
            _restore_env(self._saved_env)
            if self.temp_dir is not None:
                shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "RayRuntime":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start(address: str | None = None, num_cpus: int = 2) -> RayRuntime:
    """Join the cluster at ``address``, or start a private local one with ``num_cpus``.

    ``num_cpus`` is Ray's logical CPU count for a private cluster: it bounds how many
    one-CPU actors (model replicas) fit, not how many cores Ray processes may use.
    When this process is already connected, that connection is borrowed as it is.
    """
    if ray.is_initialized():
        return RayRuntime(address=ray.get_runtime_context().gcs_address, owned=False, connected=False)
    if address:
        return _join(address)
    return _start_private(num_cpus)


def _join(address: str) -> RayRuntime:
    check_address(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise RuntimeStartError(f"cannot join the Ray cluster at {address}: {_first_line(e)}") from None
    return RayRuntime(address=ray.get_runtime_context().gcs_address, owned=False)


def check_address(address: str, timeout_s: float = 3.0) -> None:
    """Raise RuntimeStartError for a ``host:port`` nobody listens on (Ray itself would
    retry for minutes); other address forms (``auto``, ``ray://``) are left to Ray."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise RuntimeStartError(f"cannot join the Ray cluster at {address}: {e.strerror or e}") from None


def _start_private(num_cpus: int) -> RayRuntime:
    temp_dir = Path(tempfile.mkdtemp(prefix="facestream-ray-"))
    token = temp_dir / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    saved = {name: os.environ.get(name) for name in (*_AUTH_VARS, *_PRIVATE_VARS)}
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    os.environ.pop("RAY_AUTH_TOKEN", None)  # it would take precedence over the file
    os.environ.update(_PRIVATE_VARS)
    _reload_auth()
    for_start = {name: os.environ.get(name) for name in _START_VARS}
    os.environ.update(_START_VARS)
    try:
        with _loopback_node():
            ray.init(_temp_dir=str(temp_dir), include_dashboard=False, num_cpus=num_cpus,
                     log_to_driver=False, logging_level=logging.WARNING)
    except Exception as e:
        _restore_env(for_start, reload=False)
        _restore_env(saved)
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise RuntimeStartError(f"cannot start a local Ray cluster: {_first_line(e)}") from None
    _restore_env(for_start, reload=False)
    return RayRuntime(address=ray.get_runtime_context().gcs_address, owned=True,
                      temp_dir=temp_dir, _saved_env=saved)


@contextmanager
def _loopback_node() -> Iterator[None]:
    """Ray picks 127.0.0.1 as this node's address (so every Ray process listens there
    alone) where clusters are not supported; the same choice, made here for one start.
    The variable behind it is read once, when Ray is imported: its constant is set too."""
    from ray._private import ray_constants  # private: the constant RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER sets

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def keep_serve_replicas_on_loopback() -> None:
    """On a node whose address is 127.0.0.1 (a private cluster's), make Serve's
    inter-deployment gRPC server listen there too: Ray 2.60 binds it to every interface
    (``"[::]:0"`` in ``serve/_private/replica.py``) whatever the node's address, with no
    setting to change it. Called where a deployment's module is imported, which a replica
    does before it starts that server; elsewhere, and on a node with a routable address
    (a joined cluster), it changes nothing.
    """
    if not ray.is_initialized() or ray.util.get_node_ip_address() != "127.0.0.1":
        return
    try:
        from ray.serve._private import replica  # private: where the address is written
    except ImportError:
        return
    bind = replica.add_port_to_grpc_server
    if getattr(bind, "loopback_only", False):
        return

    def on_loopback(server: Any, address: str) -> int:
        host, _, port = address.rpartition(":")
        return bind(server, f"127.0.0.1:{port}" if host in ("[::]", "0.0.0.0", "") else address)

    on_loopback.loopback_only = True   # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = on_loopback


def _restore_env(saved: dict, reload: bool = True) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if reload:
        _reload_auth()


def _reload_auth() -> None:
    """Make this process's Ray core see the auth variables as they are now.

    Ray caches its config and the token per process; without this a second private
    cluster in the same process (tests, notebooks) would present the first one's token.
    """
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]  # private, untyped

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
