"""``facestream serve``: run the service in the foreground until SIGINT or SIGTERM.

Start-up checks what can be checked in this process first (checkpoint, a configured
Redis, the Ray address, the network policy's lists, and that a service listening beyond
loopback has an API token or was told it may go without), so a mistake is one line and
an exit status, not a Serve deployment failing in another process. Shutdown stops every stream the way ``DELETE``
does (sinks flushed, Parquet closed, final event) before Serve and Ray go down.
"""
from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from typing import Any, Callable

from streamer.config import Config
from streamer.pipeline import runtime

APP_NAME = "facestream"
_READY_TIMEOUT_S = 180.0


class ServeError(RuntimeError):
    """The service could not be started (the port is taken, Serve failed to deploy)."""


class OpenApiRefused(ServeError):
    """The service would listen beyond loopback without an API token (see
    :mod:`streamer.service.auth`); a configuration mistake, not a fault."""


def serve_forever(cfg: Config, *, config_path: str | None = None, overrides: dict | None = None,
                  address: str | None = None, on_ready: Callable[[dict], None] | None = None,
                  stop: threading.Event | None = None) -> dict:
    """Serve until ``stop`` is set or a signal arrives; returns the final stream states.

    ``config_path`` and ``overrides`` travel to the Serve application, which loads the
    same config in its own process (a Config object does not go through Serve's args).
    """
    from streamer.pipeline.backend import check_services, cpus_needed

    check_exposure(cfg)
    check_services(cfg)
    if address:
        runtime.check_address(address)
    _check_port_free(cfg.service.host, cfg.service.port)
    stop = stop or threading.Event()
    rt = runtime.start(address, num_cpus=cpus_needed(cfg))
    restore = _on_signals(stop)   # after Ray's start, which may install handlers of its own
    try:
        import logging

        from ray import serve

        logging.getLogger("ray.serve").setLevel(logging.WARNING)  # our own line says it is up

        from streamer.service import manager as manager_mod
        from streamer.service.app import build_app

        serve.start(http_options={"host": cfg.service.host, "port": cfg.service.port})
        try:
            serve.run(build_app({"config": config_path, "overrides": overrides or {}}), name=APP_NAME,
                      route_prefix="/", blocking=False)
            base = f"http://{_client_host(cfg.service.host)}:{cfg.service.port}"
            _wait_healthy(base, stop)
            import ray

            manager = ray.get_actor(manager_mod.ACTOR_NAME, namespace=manager_mod.NAMESPACE)
            if on_ready is not None:   # the operator's own view: paths and addresses included
                health: Any = ray.get(manager.health.remote(True))
                on_ready({"url": base, **health})
            while not stop.wait(0.5):
                pass
            final: Any = ray.get(manager.shutdown.remote())
            ray.kill(manager)
            return final
        finally:
            _stop_serve()
    finally:
        rt.stop()
        restore()


def _stop_serve(timeout_s: float = 60.0) -> None:
    """Shut Serve down before Ray, and quietly.

    ``serve.shutdown()`` waits on a controller call that by design only ends when the
    controller kills itself, which Ray reports as a failed task on this process's stderr
    ("ServeController.graceful_shutdown failed ... infinite retries remaining"). So the
    controller is told to shut down without that wait (it still stops the application,
    its replicas and the HTTP proxy first), its name is watched until it is gone, and
    ``serve.shutdown()`` then only forgets the dead controller.
    """
    import ray
    from ray import serve
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE  # private: no public name

    try:
        controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        ray.get(controller.graceful_shutdown.remote(wait=False), timeout=timeout_s)
    except (ValueError, ray.exceptions.RayError):   # no controller, or it is gone already
        pass
    else:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
            except ValueError:
                break
            time.sleep(0.1)
    serve.shutdown()


def check_exposure(cfg: Config) -> None:
    """Refuse (:class:`OpenApiRefused`) to listen beyond loopback without an API token
    unless ``service.insecure_open_api``; check the network policy's lists and that the
    media root is a directory (ConfigError: not every file refused later)."""
    from streamer.service.auth import api_token, open_api_refusal
    from streamer.service.errors import ApiError
    from streamer.sources.netpolicy import NetworkPolicy, beyond_loopback
    from streamer.sources.urls import check_media_root

    exposed = beyond_loopback(cfg.service.host)
    try:
        refusal = open_api_refusal(cfg, cfg.service.host, exposed, api_token(cfg))
    except ApiError as e:
        raise ServeError(e.message) from None
    if refusal is not None:
        raise OpenApiRefused(refusal)
    NetworkPolicy.from_config(cfg.source, exposed=exposed)
    check_media_root(cfg.media_root)


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _check_port_free(host: str, port: int) -> None:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ServeError(f"cannot listen on {host}:{port}: {e.strerror}") from None


def _wait_healthy(base: str, stop: threading.Event) -> dict:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline and not stop.is_set():
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as r:
                return json.loads(r.read())
        except Exception as e:
            last = str(e)
            time.sleep(0.5)
    raise ServeError(f"the API at {base} did not become healthy in {_READY_TIMEOUT_S:.0f} s ({last})")


def _on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT set ``stop`` (from the main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in previous:
        signal.signal(s, lambda *_: stop.set())

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return restore

