"""Servers for the network-policy tests: a trap that counts connections reaching an
address the policy refuses, and a small HTTP site answering from a table (redirects,
playlists, segments). Shared by tests/streamer/sources/test_gateway.py and the service checks
in a loopback-only namespace (tests/streamer/service/netns_policy_checks.py)."""
from __future__ import annotations

import base64
import http.server
import socket
import threading

# What Ray itself sends to the metadata address when a head node starts (its usage
# library asks which cloud it runs on: ray/_common/usage/usage_lib.py), whatever
# RAY_USAGE_STATS_ENABLED says. Not a source's connection, so a trap sets it apart.
RAY_CLOUD_PROBES = (b"GET /metadata/instance?api-version=2021-12-13 HTTP/1.1\r\n",
                    b"GET /latest/meta-data/ HTTP/1.1\r\n")


class Trap:
    """A listener where nothing may arrive: every accepted connection is recorded.

    ``host`` "::" listens on every address of the (namespace's) machine, IPv4 included.
    ``hits`` counts the connections a source made (Ray's own cloud probe, recognised by
    its request and python-requests' User-Agent, is kept apart in ``ray_probes``).
    """

    def __init__(self, host: str, port: int = 0):
        if host == "::":
            self.listener = socket.create_server((host, port), family=socket.AF_INET6, dualstack_ipv6=True)
        else:
            self.listener = socket.create_server((host, port))
        self.port = self.listener.getsockname()[1]
        self.seen: list[tuple[str, bytes]] = []        # (address reached, what was sent first)
        self.ray_probes = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def hits(self) -> int:
        return len(self.seen)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            first = b""
            conn.settimeout(1.0)
            try:
                while b"\r\n\r\n" not in first and len(first) < 4096 and (chunk := conn.recv(4096)):
                    first += chunk
            except OSError:
                pass
            if first.startswith(RAY_CLOUD_PROBES) and b"\r\nUser-Agent: python-requests/" in first:
                self.ray_probes += 1
            else:
                self.seen.append((conn.getsockname()[0], first[:300]))
            conn.close()

    def close(self) -> None:
        self.listener.close()


class Site:
    """An HTTP server answering from ``routes``: path -> (status, headers, body), 404
    otherwise; ``auth`` (user, password) makes every route ask for Basic credentials.
    ``seen`` lists the paths asked for."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, auth: tuple[str, str] | None = None):
        self.routes: dict[str, tuple[int, dict, bytes]] = {}
        self.seen: list[str] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                site.seen.append(self.path)
                if auth and self.headers.get("Authorization") != "Basic " + base64.b64encode(
                        ":".join(auth).encode()).decode():
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="cams"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, headers, body = site.routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for k, v in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.host = host
        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def playlist(*entries: str, key: str | None = None) -> bytes:
    """A VOD HLS media playlist of ``entries`` (segment URIs), optionally AES-128 keyed."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0",
             "#EXT-X-PLAYLIST-TYPE:VOD"]
    if key:
        lines.append(f'#EXT-X-KEY:METHOD=AES-128,URI="{key}",IV=0x00000000000000000000000000000001')
    for entry in entries:
        lines += ["#EXTINF:1.2,", entry]
    return ("\n".join(lines + ["#EXT-X-ENDLIST", ""])).encode()


M3U8 = {"Content-Type": "application/vnd.apple.mpegurl"}
TS = {"Content-Type": "video/mp2t"}
