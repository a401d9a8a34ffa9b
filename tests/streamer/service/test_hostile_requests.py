"""Malformed and hostile API requests against the real running service (docs/reliability.md, "Bad
input" and "Security"): every one gets a 4xx JSON error ``{"error": {"code", "message"}}``
in bounded time, never a 5xx, never a credential echoed back, never a stream; and the
service is healthy afterwards.

Requests that reach the application are one table (:data:`CASES`); requests broken at the
HTTP level, which the server (uvicorn) answers before the application sees them, are a
second one (:data:`RAW`), where only a 4xx status and no hang are required.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

TOKEN = "test-token-5b1f"   # the service fixture's token (conftest.TOKEN; checked below)
SECRET = "hunter2"          # the password in URLs: must never come back
VALID = "one_face.mp4"      # a real file in the media root: a request carrying it is only
                            # refused for what else is wrong with it
TIMEOUT_S = 20.0            # per request: a hang fails the case, it does not block the run


@dataclass(frozen=True)
class Req:
    id: str
    method: str = "POST"
    path: str = "/streams"
    body: object = None                  # sent as JSON
    raw: bytes | None = None             # sent as is (wins over body)
    headers: dict = field(default_factory=dict)
    auth: str | None = f"Bearer {TOKEN}"  # the Authorization header; None: none sent
    status: int | None = 400             # None: any 4xx
    code: str | None = None              # the error code, when it is certain


def post(id_: str, body: object, status: int | None = 400, code: str | None = "bad_request", **kw) -> Req:
    return Req(id_, body=body, status=status, code=code, **kw)


def raw(id_: str, data: bytes, status: int | None = 400, code: str | None = None, **kw) -> Req:
    return Req(id_, raw=data, status=status, code=code, **kw)


def refused(id_: str, url: str) -> Req:
    return Req(id_, body={"url": url}, status=400, code="url_refused")



def _body_cases() -> list[Req]:
    """Bodies that are not JSON objects, wrong types and values, unknown fields, overlong strings,
    bad names, content types."""
    c: list[Req] = []
    # -- JSON that is not JSON, or not an object -------------------------------------------
    for i, data in enumerate([b"{not json", b'{"url": }', b'{"url": "a.mp4"', b"{'url': 'a.mp4'}",
                              b'{"url": "a.mp4",}', b'{"url": "a.mp4"} trailing', b"\x00\x01\x02",
                              b'{"url": "\xff\xfe"}', b'{"url": "\\ud800"', b"[" * 5000, b"{" * 5000]):
        c.append(raw(f"invalid-json-{i}", data, code=None))
    for i, data in enumerate([b"", b"null", b"[]", b"5", b'"rtsp://cam/1"', b"true", b"NaN", b"Infinity",
                              b'[{"url": "one_face.mp4"}]']):
        c.append(raw(f"not-an-object-{i}", data, code=None))
    c.append(Req("no-body-at-all", code="bad_request"))
    # NaN and infinities: not JSON, but Python's json reads them
    c += [raw("fps-NaN", b'{"url": "one_face.mp4", "fps": NaN}', code="bad_request"),
          raw("fps-Infinity", b'{"url": "one_face.mp4", "fps": Infinity}', code="bad_request"),
          raw("fps-minus-Infinity", b'{"url": "one_face.mp4", "fps": -Infinity}', code="bad_request"),
          raw("fps-1e999", b'{"url": "one_face.mp4", "fps": 1e999}', code="bad_request"),
          raw("every-NaN", b'{"url": "one_face.mp4", "options": {"every": NaN}}', code="bad_request"),
          raw("every-1e999", b'{"url": "one_face.mp4", "options": {"every": 1e999}}', code="bad_request"),
          raw("every-4000-digits", b'{"url": "one_face.mp4", "options": {"every": ' + b"9" * 4000 + b"}}",
              code="bad_request"),
          raw("every-5000-digits", b'{"url": "one_face.mp4", "options": {"every": ' + b"9" * 5000 + b"}}",
              code=None),
          raw("duplicate-keys-last-refused", b'{"url": "one_face.mp4", "url": "concat:a|b"}', code="url_refused")]
    # -- wrong types for every field -----------------------------------------------------------
    for i, v in enumerate([5, 5.5, True, None, [], {}, [VALID], {"path": VALID}]):
        c.append(post(f"url-type-{i}", {"url": v}))
    for i, v in enumerate([5, True, [], {}, ["x"]]):
        c.append(post(f"name-type-{i}", {"url": VALID, "name": v}))
    for i, v in enumerate(["fast", [], {}, [25], 0, -1, -0.0, 241, 1e300, 1e-400]):
        c.append(post(f"fps-value-{i}", {"url": VALID, "fps": v}))
    for i, v in enumerate(["tcp", 5, [], True]):
        c.append(post(f"options-type-{i}", {"url": VALID, "options": v}))
    for i, v in enumerate([{"transport": "TCP"}, {"transport": "sctp"}, {"transport": 5}, {"transport": None},
                           {"transport": ["tcp"]}, {"every": 0}, {"every": -1}, {"every": 10001},
                           {"every": 1.5}, {"every": "often"}, {"every": []}]):
        c.append(post(f"options-value-{i}", {"url": VALID, "options": v}))
    # -- unknown fields at each level ---------------------------------------------------------
    c += [post("unknown-top-field", {"url": VALID, "colour": "red"}),
          post("unknown-top-field-only", {"URL": VALID}),
          post("unknown-proto-field", {"url": VALID, "__proto__": {"admin": True}}),
          post("unknown-options-field", {"url": VALID, "options": {"speed": 2}}),
          post("unknown-options-ffmpeg", {"url": VALID, "options": {"protocol_whitelist": "file,concat"}}),
          post("unknown-nested-deep", {"url": VALID, "options": {"transport": "tcp", "x": {"y": {"z": 1}}}})]
    # -- overlong strings ---------------------------------------------------------------------
    c += [post("url-4097-chars", {"url": "a" * 4097}),
          post("name-65-chars", {"url": VALID, "name": "n" * 65}),
          post("name-empty", {"url": VALID, "name": ""}),
          post("url-empty", {"url": ""}),
          Req("body-over-limit", body={"url": "a" * 70000}, status=413, code="body_too_large")]
    # -- names the manager refuses --------------------------------------------------------------
    for i, name in enumerate(["../../etc", "..", ".", ".hidden", "-rf", "a b", "a/b", "a\\b", "名前", "x\u202ey",
                              "tab\tname", "new\nline", "nul\x00", "%2e%2e", "a;rm -rf"]):
        c.append(Req(f"bad-name-{i}", body={"url": VALID, "name": name}, code="bad_name"))
    # -- content types ----------------------------------------------------------------------
    for i, ctype in enumerate(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                               "application/xml", "application/octet-stream"]):
        c.append(Req(f"content-type-{i}", body={"url": VALID}, headers={"Content-Type": ctype}, code=None))
    c.append(Req("content-type-json-variant", body={"url": "concat:a|b"},
                 headers={"Content-Type": "application/vnd.evil+json"}, code=None))
    return c


def _url_cases() -> list[Req]:
    """URLs with refused schemes and tricks, and ways out of the media root."""
    c: list[Req] = []
    # -- URLs: refused schemes and tricks ----------------------------------------------------
    s = SECRET
    for i, url in enumerate([
            "concat:one_face.mp4|two_faces.mp4", "subfile,,start,0,end,100,,:one_face.mp4",
            "data:video/mp4;base64,AAAA", "pipe:0", "fd:3", "unix:/var/run/docker.sock", "tcp://127.0.0.1:6379",
            "udp://127.0.0.1:5000", "tls://example.org:443", "crypto:one_face.mp4", "async:file:/etc/passwd",
            "cache:file:/etc/passwd", "hls+http://example.org/x.m3u8", "httpproxy://example.org/",
            "gopher://example.org/", "ftp://admin:hunter2@example.org/x.mp4", "sftp://example.org/x",
            "rtmp://example.org/live", "srt://example.org:9000", "smb://example.org/share/x.mp4",
            "file:///etc/passwd", "file://localhost/etc/passwd", "file:/etc/passwd", "file://evil.org/x.mp4",
            "file:///etc/passwd%00.mp4", "file:one_face.mp4?x=1", "file:one_face.mp4#frag",
            "../../../etc/passwd", "/etc/hosts", "/proc/self/environ", "C:\\Windows\\win.ini",
            "HTTP://example.org/x.ts", "Rtsp://example.org/x",
            "rtsp\u200b://example.org/x", "\u202ertsp://example.org/x",
            "http://example.org/x\ny", "http://example.org/x\r\nHost: evil", "rtsp://example.org/x\x00",
            "one_face.mp4\x00.txt", " rtsp://example.org/x", "rtsp://example.org/x ", "http://exa mple.org/",
            "http://ex\u00e4mple.org/", f"http://admin:{s}@a@example.org/x", f"rtsp://admin:{s}@/x",
            "http://:80/x", f"rtsp://admin:{s}@example.org:99999/x", "http://example.org:port/x", "rtsp:/example.org/x",
            f"rtsp:admin:{s}@example.org/x", "javascript:alert(1)", "about:blank"]):
        c.append(refused(f"url-refused-{i}", url))
    c += [refused("url-unbalanced-bracket", f"http://admin:{s}@[::1/x"),
          refused("url-bracketed-name", "rtsp://[example.org]/x")]
    # the media root: .. escapes, absolute paths out, a symlink inside pointing out
    c += [Req("symlink-escape", body={"url": "escape.mp4"}, code="url_refused"),
          Req("symlink-dir-escape", body={"url": "escape-dir/etc/passwd"}, code="url_refused"),
          Req("dotdot-escape-absolute", body={"url": "{media}/../../etc/passwd"}, code="url_refused"),
          Req("dotdot-escape-file-url", body={"url": "file://{media}/%2e%2e/%2e%2e/etc/passwd"}, code="url_refused"),
          Req("dotdot-after-valid", body={"url": "one_face.mp4/../../../etc/passwd"}, code="url_refused")]
    return c


def _route_cases() -> list[Req]:
    """Junk in stream ids, unknown routes, wrong methods, bad authorization."""
    c: list[Req] = []
    # -- path traversal and junk in stream ids ------------------------------------------------
    for i, path in enumerate(["/streams/..%2F..%2Fetc%2Fpasswd", "/streams/%2e%2e", "/streams/%00",
                              "/streams/%ff%fe", "/streams/" + "x" * 5000, "/streams/%0d%0aSet-Cookie:%20a=b",
                              "/streams/name%3Bdrop"]):
        # an encoded '/' is decoded before routing: no route then, rather than no stream
        code = "not_found" if "%2F" in path else "unknown_stream"
        c.append(Req(f"id-get-{i}", "GET", path, status=404, code=code))
        c.append(Req(f"id-delete-{i}", "DELETE", path, status=404, code=code))
    c += [Req("route-dotdot", "GET", "/streams/../../etc/passwd", status=404, code=None),
          Req("route-unknown", "GET", "/admin", status=404, code="not_found"),
          Req("route-slash-id", "GET", "/streams/a/b", status=404, code="not_found")]
    # -- wrong methods ------------------------------------------------------------------------
    for i, (method, path) in enumerate([("PUT", "/streams"), ("PATCH", "/streams"), ("DELETE", "/streams"),
                                        ("POST", "/streams/x"), ("PUT", "/streams/x"), ("POST", "/healthz"),
                                        ("DELETE", "/healthz"), ("POST", "/metrics"), ("TRACE", "/streams"),
                                        ("OPTIONS", "/streams")]):
        c.append(Req(f"method-{i}", method, path, status=405, code="method_not_allowed"))
    # -- bad authorization -------------------------------------------------------------------
    for i, auth in enumerate(["Basic dGVzdDp0ZXN0", f"Basic {TOKEN}", "Bearer", "Bearer ", "", f"Token {TOKEN}",
                              f"Bearer{TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN[::-1]}",
                              f"Bearer {TOKEN[:5]} {TOKEN[5:]}", f"Bearer {TOKEN}, Bearer x", "Bearer " + "A" * 8000,
                              f"Bearer {TOKEN.upper()}", "Bearer t\u00ebst", f"Digest {TOKEN}"]):
        c.append(Req(f"auth-{i}", "GET", "/streams", auth=auth, status=401, code="unauthorized"))
    c += [Req("auth-none-post", body={"url": VALID}, auth=None, status=401, code="unauthorized"),
          Req("auth-bad-delete", "DELETE", "/streams/x", auth="Bearer nope", status=401, code="unauthorized"),
          Req("auth-bad-metrics", "GET", "/metrics", auth="Basic x", status=401, code="unauthorized"),
          Req("auth-none-get-id", "GET", "/streams/x", auth=None, status=401, code="unauthorized"),
          Req("auth-none-bad-json", raw=b"{not json", auth=None, status=401, code="unauthorized"),
          Req("auth-bad-bad-body", body={"url": 5}, auth="Bearer nope", status=401, code="unauthorized")]
    return c


def _cases() -> list[Req]:
    return _body_cases() + _url_cases() + _route_cases()


CASES = _cases()
# Groups for the table in docs/reliability.md, by id prefix (first match wins).
GROUPS = [("invalid-json", "invalid JSON"), ("duplicate-keys", "invalid JSON"),
          ("not-an-object", "not a JSON object"), ("no-body", "not a JSON object"),
          ("fps-NaN", "NaN, infinities, huge numbers"), ("fps-Inf", "NaN, infinities, huge numbers"),
          ("fps-minus", "NaN, infinities, huge numbers"), ("fps-1e999", "NaN, infinities, huge numbers"),
          ("every-", "NaN, infinities, huge numbers"), ("url-type", "wrong types and values"),
          ("name-type", "wrong types and values"), ("fps-value", "wrong types and values"),
          ("options-", "wrong types and values"), ("unknown-", "unknown fields"),
          ("url-4097", "overlong or empty strings, body over the limit"),
          ("name-65", "overlong or empty strings, body over the limit"),
          ("name-empty", "overlong or empty strings, body over the limit"),
          ("url-empty", "overlong or empty strings, body over the limit"),
          ("body-over", "overlong or empty strings, body over the limit"),
          ("bad-name", "stream names"), ("content-type", "content types"),
          ("url-", "refused URLs: schemes and tricks"), ("symlink", "escapes from the media root"),
          ("dotdot", "escapes from the media root"), ("id-", "ids and routes"), ("route-", "ids and routes"),
          ("method-", "wrong methods"), ("auth-", "authorization")]


def group_of(case_id: str) -> str:
    return next(group for prefix, group in GROUPS if case_id.startswith(prefix))
# Requests the HTTP server itself answers: only a 4xx status and no hang are required.
RAW = [
    ("request-line-garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n"),
    ("no-http-version", b"GET /healthz\r\n\r\n"),
    ("header-without-colon", b"GET /streams HTTP/1.1\r\nHost: x\r\nnot a header\r\n\r\n"),
    ("content-length-not-a-number", b"POST /streams HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}"),
    ("content-length-negative", b"POST /streams HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}"),
    ("two-content-lengths", b"POST /streams HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 9\r\n\r\n{}"),
    ("header-over-64k", b"GET /streams HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"A" * 70000 + b"\r\n\r\n"),
    ("nul-in-header", b"GET /streams HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\x00b\r\n\r\n"),
    ("unknown-method", b"FOO /streams HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n"),
    ("http-0.9", b"GET /healthz\r\n"),
    ("http-2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
]


def _request(base: str, req: Req, media: str) -> tuple[int, str, bytes, float]:
    """(status, content type, body, seconds) of one request over a fresh connection."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_S)
    headers = dict(req.headers)
    if req.auth is not None:
        headers["Authorization"] = req.auth
    data = req.raw
    if data is None and req.body is not None:
        body = req.body
        if isinstance(body, dict) and isinstance(body.get("url"), str):
            body = {**body, "url": body["url"].replace("{media}", media)}
        data = json.dumps(body).encode()
    if data is not None:
        headers.setdefault("Content-Type", "application/json")
    t0 = time.monotonic()
    try:
        conn.putrequest(req.method, req.path, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v.encode("utf-8") if isinstance(v, str) else v)
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type", ""), resp.read(), time.monotonic() - t0
    finally:
        conn.close()


@pytest.fixture(scope="module")
def hostile_service(service, tmp_path_factory):
    """The service, with symlinks out of its media root, and the streams it had before."""
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.mp4").write_bytes(b"not for you")
    links = [service.media_root / "escape.mp4", service.media_root / "escape-dir"]
    links[0].symlink_to(outside / "secret.mp4")
    links[1].symlink_to("/")
    code, before = service.request("GET", "/streams")
    assert code == 200
    yield service, {"before": {s["id"] for s in before}}   # the ids that existed before
    for link in links:
        link.unlink()


def test_the_table_uses_the_service_token(token):
    assert token == TOKEN and len(CASES) >= 100


@pytest.mark.parametrize("req", CASES, ids=[r.id for r in CASES])
def test_malformed_request_gets_a_json_4xx(hostile_service, req):
    service, _ = hostile_service
    status, ctype, body, seconds = _request(service.base, req, str(service.media_root))
    text = body.decode("utf-8", "replace")
    assert 400 <= status < 500, (status, text)
    if req.status is not None:
        assert status == req.status, (status, text)
    assert "json" in ctype, (ctype, text)
    error = json.loads(text)["error"]
    assert set(error) == {"code", "message"} and error["message"] and isinstance(error["message"], str), error
    if req.code is not None:
        assert error["code"] == req.code, error
    assert SECRET not in text and TOKEN not in text, text
    assert "Traceback" not in text and seconds < TIMEOUT_S


@pytest.mark.parametrize("name,data", RAW, ids=[r[0] for r in RAW])
def test_broken_http_gets_a_4xx_without_hanging(hostile_service, name, data):
    service, _ = hostile_service
    parts = urlsplit(service.base)
    with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(data)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server may have closed already
            pass
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status_line = reply.split(b"\r\n", 1)[0]
    # a reply, if any, is a 4xx; the server may also just close a connection it cannot parse
    assert not reply or (status_line.startswith(b"HTTP/1.1 4") and TOKEN.encode() not in reply), reply[:200]


def test_chunked_body_over_the_limit_is_refused(hostile_service):
    service, _ = hostile_service
    parts = urlsplit(service.base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_S)
    try:
        payload = json.dumps({"url": "concat:" + "a" * 200_000}).encode()
        chunks = (payload[i:i + 8192] for i in range(0, len(payload), 8192))
        conn.request("POST", "/streams", body=chunks, encode_chunked=True,
                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
                              "Transfer-Encoding": "chunked"})
        resp = conn.getresponse()
        status, text = resp.status, resp.read().decode()
    finally:
        conn.close()
    assert status == 413, text


@pytest.mark.parametrize("url", ["does-not-exist.mp4", "\uff48ttp://example.org/x"], ids=["missing", "homoglyph"])
def test_a_path_that_is_not_there_is_refused_at_once(hostile_service, url):
    service, _ = hostile_service
    status, _, body, _ = _request(service.base, Req("not-there", body={"url": url}), str(service.media_root))
    assert status == 400 and json.loads(body)["error"]["code"] == "no_such_file", (status, body)


def test_refusals_say_what_is_wrong_in_words(hostile_service, tmp_path_factory):
    """A body that is not JSON names the parser's complaint and where; a symlink out of the
    media root is named as a link, with where it points."""
    service, _ = hostile_service
    code, body = service.request("POST", "/streams", raw=b'{"url": "a.mp4" "name": "x"}')
    assert code == 400 and body["error"] == {
        "code": "bad_json", "message": "the body is not valid JSON: Expecting ',' delimiter at line 1 column 17"}
    code, body = service.request("POST", "/streams", raw=b'{\n  "url": "a.mp4",\n}')
    assert code == 400 and body["error"]["message"] == \
        "the body is not valid JSON: Expecting property name enclosed in double quotes at line 3 column 1"
    outside = (service.media_root / "escape.mp4").readlink()
    for url, message in (("escape.mp4", f"escape.mp4: escape.mp4 is a symbolic link to {outside}, outside the "
                                        "media root"),
                         ("escape-dir/etc/passwd", "escape-dir/etc/passwd: escape-dir is a symbolic link to /, "
                                                   "outside the media root"),
                         ("../../etc/passwd", "../../etc/passwd: outside the media root")):
        code, body = service.request("POST", "/streams", {"url": url})
        assert code == 400 and body["error"] == {"code": "url_refused", "message": message}, body


def test_the_service_is_healthy_and_created_nothing(hostile_service):
    """Runs after the tables (same module, later in file order)."""
    service, seen = hostile_service
    code, health = service.request("GET", "/healthz", token=None)
    assert code == 200 and health["status"] == "ok"
    code, after = service.request("GET", "/streams")
    assert code == 200
    new = {s["id"] for s in after} - seen["before"]
    assert not new, [s for s in after if s["id"] in new]
    assert not os.path.exists(service.out / "records" / "stream=escape")



def test_a_camera_that_will_not_serve_fails_at_once_and_a_short_file_reports_its_figures(hostile_service, face_video):
    """After the check that nothing was created: a 404 from the camera ends the stream
    `failed` with the answer and no retry (give_up_s is 20 s), leaving no empty Parquet
    folder; a 40-frame file that ends before anyone asked for its progress still reports
    its source rate, lag and latencies, over every frame."""
    from streamer.testbed import RtspServer

    service, _ = hostile_service
    with RtspServer(face_video.path) as camera:
        url = camera.url.removesuffix(camera.path) + "/wrong-path"
        code, created = service.request("POST", "/streams", {"url": url, "name": "cam-404"})
        assert code == 201, created
        done = service.wait("cam-404", lambda s: s["state"] not in ("connecting", "running"), timeout_s=60,
                            what="the end")
    assert done["state"] == "failed" and done["reconnects"] == 0, done
    assert done["last_error"] == f"SourceRejected: {url} answered 404 Not Found", done
    assert not (service.out / "records" / "stream=cam-404").exists()
    code, created = service.request("POST", "/streams", {"url": VALID, "name": "short"})
    assert code == 201, created
    ended = service.wait("short", lambda s: s["state"] == "ended", what="ended")
    assert ended["frames"] == face_video.frames and ended["source_fps"] == face_video.fps, ended
    assert ended["lag_s"] > 0 and 0 < ended["latency_p50_s"] <= ended["latency_p99_s"], ended
    code, text = service.request("GET", "/metrics")
    counts = [line for line in text.splitlines() if line.startswith("facestream_stream_latency_seconds_count")
              and 'stream="short"' in line]
    assert len(counts) == 1 and float(counts[0].split()[-1]) == face_video.frames, counts


if __name__ == "__main__":  # the case counts per group, for docs/reliability.md
    from collections import Counter

    counts = Counter(group_of(r.id) for r in CASES)
    print("| group | requests |\n|---|---:|")
    for group, n in counts.items():
        print(f"| {group} | {n} |")
    print(f"| broken HTTP (answered by the server) | {len(RAW)} |")
    print("| chunked body over the limit | 1 |")
    print("| paths that do not exist in the media root | 2 |")
    print(f"| **total** | {len(CASES) + len(RAW) + 3} |")
