"""50 concurrent API calls while streams run: every answer is 2xx or a 4xx with a reason."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor


def test_fifty_concurrent_calls_beside_running_streams(service, two_face_video):
    from streamer.testbed import RtspServer

    with RtspServer(two_face_video.path) as rtsp:
        ids = [service.request("POST", "/streams", {"url": rtsp.url})[1]["id"] for _ in range(2)]
        for sid in ids:
            service.wait(sid, lambda s: s["frames"] >= 5, timeout_s=90, what="5 frames")
        calls = [("GET", "/streams", None), ("GET", f"/streams/{ids[0]}", None), ("GET", "/metrics", None),
                 ("GET", "/healthz", None), ("POST", "/streams", b'{"url": 5}'),
                 ("POST", "/streams", json.dumps({"url": rtsp.url}).encode())] * 9
        with ThreadPoolExecutor(len(calls[:50])) as pool:
            answers = list(pool.map(lambda c: service.request(c[0], c[1], raw=c[2]), calls[:50]))
        created = [body["id"] for code, body in answers if code == 201]
        for sid in ids + created:
            assert service.request("DELETE", f"/streams/{sid}")[0] == 200
    statuses = [code for code, _ in answers]
    assert len(statuses) == 50 and all(code < 500 for code in statuses), statuses
    for code, body in answers:
        if code >= 400:
            assert body["error"]["code"] in ("bad_request", "too_many_streams"), body
    # 2 running + at most 2 more fit the limit of 4; the other submissions got 429
    assert len(created) <= 2 and statuses.count(429) == 8 - len(created)
