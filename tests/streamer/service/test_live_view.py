"""The live view (streamer/view/) in a real browser: headless Chromium from the OS packages
(`make browser`), driven by selenium, against the running service of this package's
``service`` fixture, with the view server started as ``facestream serve`` starts it and a
live RTSP camera looping the one-face clip.

It lives beside the API tests to share their service (starting another costs a minute);
what it asserts is what the page shows: the stream's row and state, a frame that is a
picture with a box drawn where the clip's face is, curves that move, and stop.
"""
from __future__ import annotations

import base64
import http.client
import io
import json
import os
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import redis

from testsupport.browser import headless_chromium

from .conftest import TOKEN

# tests/conftest.py's one-face clip: 320x240, a 110 px face patch centred vertically
# (rows 65-175) and moving left to right; the detector's box is about two thirds of it.
FACE_ROWS = (65, 175)


@pytest.fixture(scope="module")
def view(service, tmp_path_factory):
    """The live view of the package's service, started as `facestream serve` starts it."""
    from streamer.config import load_config
    from streamer.view.server import ViewServer

    token_file = tmp_path_factory.mktemp("view") / "token"
    token_file.write_text(TOKEN)
    cfg = load_config(overrides={"service": {"api_token_file": str(token_file)}})
    server = ViewServer(cfg, 0).start(service.base, service.health["redis"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    driver = headless_chromium()
    yield driver
    driver.quit()


def _get(url: str, headers: dict | None = None) -> tuple[int, str, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(errors="replace"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace"), dict(e.headers)


def test_the_view_is_behind_the_token_and_answers_errors_as_json(view):
    code, body, _ = _get(view.url + "api/streams")
    assert code == 401 and json.loads(body)["error"]["code"] == "unauthorized"
    code, body, _ = _get(view.url + "api/streams", {"Authorization": f"Bearer {TOKEN}"})
    assert code == 200 and isinstance(json.loads(body), list)
    code, body, _ = _get(view.url + "no/such/page", {"Authorization": f"Bearer {TOKEN}"})
    assert code == 404 and json.loads(body)["error"]["code"] == "not_found"
    code, body, _ = _get(view.url + "?token=wrong")
    assert code == 401 and "not the service's token" in body
    code, body, _ = _get(view.url + "static/view.css")
    assert code == 200 and "--accent" in body            # the pages' assets come from the package
    # ?token= sets the cookie (HttpOnly, SameSite=Strict, not the token) and drops itself from the address
    conn = http.client.HTTPConnection("127.0.0.1", view.port, timeout=10)
    conn.request("GET", f"/streams/x?token={TOKEN}&a=1")
    answer = conn.getresponse()
    cookie = answer.getheader("set-cookie", "")
    assert answer.status == 303 and answer.getheader("location") == "/streams/x?a=1"
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
    conn.close()
    json_with_token = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    form_with_cookie = {"Cookie": cookie.split(";")[0], "Content-Type": "application/x-www-form-urlencoded"}
    for body, headers, status, code in ((b"{", json_with_token, 400, "bad_json"),
                                        (b"url=rtsp://x", form_with_cookie, 415, "unsupported_media_type"),
                                        (b'{"url": "ftp://example.org/x"}', json_with_token, 400, None)):
        req = urllib.request.Request(view.url + "api/streams", data=body, method="POST", headers=headers)
        try:
            urllib.request.urlopen(req, timeout=30)
            raise AssertionError(f"{body!r} was accepted")
        except urllib.error.HTTPError as e:
            error = json.loads(e.read())["error"]
            assert e.code == status and (code is None or error["code"] == code), (body, e.code, error)
    assert "ftp" in error["message"]                      # the API's own refusal, passed on


def _wait(driver, script: str, what: str, timeout_s: float = 90.0):
    """Run ``script`` (JS returning a value) until it returns something truthy; a script
    that throws (the next page is not there yet) counts as not yet."""
    deadline, value = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        value = driver.execute_script(f"try {{ {script} }} catch (e) {{ return null; }}")
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"the page never showed {what} (last: {value!r})")


def _image(data_url: str) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB"))


_LIVE_PIXELS = """
const img = document.getElementById('live');
if (!img.complete || !img.naturalWidth) return null;
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
c.getContext('2d').drawImage(img, 0, 0);
return c.toDataURL('image/png');
"""


def _box_pixels(image: np.ndarray) -> np.ndarray:
    """(row, col) of pixels in one of the annotation's track colours (not white)."""
    from streamer.report.annotate import _TRACK_COLORS

    colours = np.array([c for c in _TRACK_COLORS if c != (255, 255, 255)], np.float32)
    dist = np.linalg.norm(image[:, :, None, :].astype(np.float32) - colours[None, None], axis=-1).min(axis=-1)
    return np.argwhere(dist < 45)


def test_the_page_shows_the_stream_its_annotated_frames_and_moving_curves(view, browser, service, face_video, port):
    from selenium.webdriver.common.by import By

    from streamer.data.view_frame import frame_key
    from streamer.testbed import RtspServer

    driver = browser
    with RtspServer(face_video.path, port=port) as camera:
        # log in: a wrong token is refused on the page, the right one opens the list
        driver.get(view.url)
        assert driver.current_url.startswith(view.url + "login")
        driver.find_element(By.ID, "token").send_keys("not-the-token\n")
        # the form posts and a new page loads: wait for it rather than read the old one
        refusal = _wait(driver, """const m = document.getElementById('message');
                                   return m && m.innerText.trim()""", "the login's refusal")
        assert "not the service's token" in refusal
        _wait(driver, "return document.getElementById('token') !== null", "the token field again")
        driver.find_element(By.ID, "token").send_keys(TOKEN + "\n")
        _wait(driver, "return document.querySelector('#streams') !== null", "the streams table")

        # submit from the page; the row appears and turns running, with the camera's fps
        driver.find_element(By.ID, "url").send_keys(camera.url)
        driver.find_element(By.ID, "name").send_keys("view-cam\n")
        row = _wait(driver, """const r = document.querySelector('tr[data-stream="view-cam"]');
                               return r && r.dataset.state === 'running' && r.innerText""", "view-cam running")
        assert "rtsp://127.0.0.1" in row and "running" in row
        service.wait("view-cam", lambda s: s["frames"] >= 25, timeout_s=60, what="25 frames")
        listed = driver.execute_script("return facestreamView.streams.find(s => s.id === 'view-cam')")
        assert listed["source_fps"] == pytest.approx(face_video.fps, rel=0.1)
        # nobody watches it yet: the session sends the view no frame
        client = redis.Redis.from_url(service.health["redis"])
        assert not client.exists(frame_key("facestream", "view-cam"))

        # the stream's page: live frames with a box where the face is
        driver.find_element(By.LINK_TEXT, "view-cam").click()
        _wait(driver, "return document.getElementById('state').textContent === 'running'", "the state")
        deadline, found = time.monotonic() + 60, None
        while time.monotonic() < deadline and found is None:
            shot = driver.execute_script(_LIVE_PIXELS)
            if shot:
                image = _image(shot)
                box = _box_pixels(image)
                if image.shape[:2] == (240, 320) and len(box) >= 60:
                    found = image, box
            time.sleep(0.3)
        assert found is not None, "no annotated frame with a box came"
        image, box = found
        assert image.astype(np.float32).std() > 20                    # a picture, not a blank placeholder
        rows, cols = np.percentile(box[:, 0], [5, 95]), np.ptp(box[:, 1])
        assert FACE_ROWS[0] - 25 <= rows[0] and rows[1] <= FACE_ROWS[1] + 25, rows   # in the face's lane
        assert 40 <= cols <= 200, cols                                 # a box about the face's width
        assert client.exists(frame_key("facestream", "view-cam"))     # watched now, the session sends

        # curves: a person's points arrive and move; the pose chart differs between two moments
        _wait(driver, "const c = facestreamView.curves; const k = Object.keys(c)[0];"
                      "return k && c[k].length >= 8", "curve points", timeout_s=60)
        chart = "return document.querySelector('canvas[data-group=\"pose\"]').toDataURL('image/png')"
        first = _image(_wait(driver, chart, "the pose chart"))
        t1 = driver.execute_script("return facestreamView.newest")
        _wait(driver, f"return facestreamView.newest > {t1} + 1.5", "newer points", timeout_s=30)
        second = _image(driver.execute_script(chart))
        assert first.shape == second.shape and np.abs(first.astype(int) - second.astype(int)).sum() > 0
        points = driver.execute_script("const c = facestreamView.curves; return c[Object.keys(c)[0]]")
        yaw = [p["pose"][0] for p in points if p["pose"][0] is not None]
        assert len(yaw) >= 8 and np.ptp(yaw) > 0 and points[-1]["t"] > points[0]["t"]
        assert driver.execute_script("return facestreamView.names.pose") == ["yaw", "pitch", "roll"]
        label = driver.find_element(By.CSS_SELECTOR, ".person h3").text
        assert label.startswith(("P", "T")), label
        shot_to = os.environ.get("FACESTREAM_VIEW_SCREENSHOT")
        if shot_to:   # how docs/img/live_view.png is made
            driver.save_screenshot(shot_to)

        # stop from the page
        driver.find_element(By.ID, "stop").click()
        _wait(driver, "return document.getElementById('state').textContent === 'stopped'", "stopped", timeout_s=60)
    code, status = service.request("GET", "/streams/view-cam")
    assert code == 200 and status["state"] == "stopped" and status["frames"] >= 25
