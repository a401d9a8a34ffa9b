"""A small HTTP client for the service API (``facestream submit / streams / stop``).

Standard library only: the client commands must work in a plain shell without the
server's dependencies being importable quickly. The server is found by ``--server``,
else ``FACESTREAM_SERVER``, else http://127.0.0.1:8000; the token by
``FACESTREAM_API_TOKEN``.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_SERVER = "http://127.0.0.1:8000"


class ApiClientError(RuntimeError):
    """The server answered with an error (``status`` > 0) or could not be reached (0)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code


class ApiClient:
    def __init__(self, server: str | None = None, token: str | None = None, timeout_s: float = 60.0):
        self.server = (server or os.environ.get("FACESTREAM_SERVER") or DEFAULT_SERVER).rstrip("/")
        self.token = token if token is not None else os.environ.get("FACESTREAM_API_TOKEN")
        self.timeout_s = timeout_s

    def submit(self, url: str, name: str | None = None, fps: float | None = None,
               options: dict | None = None) -> dict:
        body: dict[str, Any] = {"url": url}
        if name:
            body["name"] = name
        if fps is not None:
            body["fps"] = fps
        if options:
            body["options"] = options
        return self._request("POST", "/streams", body)

    def streams(self) -> list[dict]:
        return self._request("GET", "/streams")

    def stream(self, stream_id: str) -> dict:
        return self._request("GET", f"/streams/{urllib.parse.quote(stream_id, safe='')}")

    def stop(self, stream_id: str) -> dict:
        """DELETE: stops an active stream; removes a finished one (``removed`` says which)."""
        return self._request("DELETE", f"/streams/{urllib.parse.quote(stream_id, safe='')}")

    def restart(self, stream_id: str) -> dict:
        """Start a stopped or failed stream again (same id and options)."""
        return self._request("POST", f"/streams/{urllib.parse.quote(stream_id, safe='')}/restart")

    def health(self) -> dict:
        return self._request("GET", "/healthz")

    def _request(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                err = json.loads(e.read()).get("error", {})
            except ValueError:
                err = {}
            raise ApiClientError(e.code, err.get("code", "http_error"),
                                 f"{self.server} answered {e.code}: {err.get('message', e.reason)}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ApiClientError(0, "unreachable", f"cannot reach the facestream server at {self.server} "
                                                   f"({reason}); is `facestream serve` running?") from None
