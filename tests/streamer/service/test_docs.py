"""/docs and /openapi.json over real HTTP: behind the token (Bearer, or Basic with the
token as the password, which a browser's login prompt sends), and a page that loads
everything from the service itself."""
from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request

from testsupport.browser import headless_chromium


def _basic(password: str, user: str = "me") -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_docs_and_openapi_are_behind_the_token_and_fetch_nothing_from_elsewhere(service, token):
    def get(path: str, headers: dict) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(service.base + path, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    bearer = {"Authorization": f"Bearer {token}"}
    # without the token: 401, and a browser is asked for credentials on the docs pages only
    for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
        code, headers, body = get(path, {})
        assert code == 401 and b'"unauthorized"' in body, (path, code, body)
        assert headers["www-authenticate"] == 'Basic realm="facestream"', headers
    code, headers, _ = get("/streams", {})
    assert code == 401 and headers["www-authenticate"] == 'Bearer realm="facestream"'
    assert get("/docs", _basic("wrong"))[0] == 401

    code, headers, html = get("/docs", bearer)
    assert code == 200 and headers["content-type"].startswith("text/html")
    page = html.decode()
    assert get("/docs", _basic(token))[0] == 200 and get("/docs", _basic(token, user=""))[0] == 200
    assert "SwaggerUIBundle" in page and '"validatorUrl": null' in page   # no badge from validator.swagger.io
    assert not re.search(r"https?:|//", page), page       # no URL elsewhere, not even protocol-relative
    refs = re.findall(r'(?:src|href)="([^"]*)"', page) + re.findall(r"url: '([^']*)'", page)
    assert sorted(refs) == ["/docs/assets/favicon.png", "/docs/assets/swagger-ui-bundle.js",
                            "/docs/assets/swagger-ui.css", "/openapi.json"], refs
    for ref, kind, at_least in (("/docs/assets/swagger-ui-bundle.js", "text/javascript", 500_000),
                                ("/docs/assets/swagger-ui.css", "text/css", 50_000),
                                ("/docs/assets/favicon.png", "image/png", 100)):
        code, headers, body = get(ref, _basic(token))      # as the browser fetches them after its prompt
        assert code == 200 and headers["content-type"].startswith(kind) and len(body) > at_least, (ref, code)
    code, _, body = get("/docs/assets/..%2Fcore.py", bearer)
    assert code == 404 and b'"not_found"' in body

    code, _, raw = get("/openapi.json", bearer)
    assert code == 200
    spec = json.loads(raw)
    assert spec["info"]["title"] == "facestream" and spec["openapi"].startswith("3.")
    assert {"/streams", "/streams/{stream_id}", "/healthz", "/metrics"} <= set(spec["paths"])
    assert {"post", "get"} <= set(spec["paths"]["/streams"]) and "delete" in spec["paths"]["/streams/{stream_id}"]
    assert "/docs" not in spec["paths"] and not any(p.startswith("/docs/") for p in spec["paths"])
    assert spec["components"]["securitySchemes"]["bearer"] == {**spec["components"]["securitySchemes"]["bearer"],
                                                               "type": "http", "scheme": "bearer"}
    assert spec["security"] == [{"bearer": []}] and spec["paths"]["/healthz"]["get"]["security"] == []
    assert "StreamRequest" in spec["components"]["schemas"]


def test_docs_in_a_browser_render_the_api_from_the_service_alone_and_try_it_out_works(service, token):
    """Headless Chromium (`make browser`) opens /docs with the token as Basic credentials,
    as a user answering the login prompt does: every request the page makes goes to the
    service, the operations are listed, and "Try it out" on GET /streams answers 200."""
    driver = headless_chromium(window=(1400, 1000), log_network=True)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        host = service.base.split("://", 1)[1]
        # what the login prompt leaves: the credentials in the browser's cache for the service,
        # not in the page's address (a fetch from a page whose URL holds them is refused)
        driver.get(f"http://docs-reader:{token}@{host}/docs/assets/favicon.png")
        driver.get(service.base + "/docs")
        wait = WebDriverWait(driver, 30)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
        paths = {e.text.replace("\u200b", "") for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
        assert {"/streams", "/streams/{stream_id}", "/healthz", "/metrics"} <= paths, paths
        streams = driver.find_element(By.ID, "operations-default-list_streams_streams_get")
        streams.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
        wait.until(lambda d: streams.find_elements(By.CSS_SELECTOR, ".try-out__btn"))[0].click()
        streams.find_element(By.CSS_SELECTOR, ".execute").click()
        answered = ".live-responses-table tr.response .response-col_status"
        status = wait.until(lambda d: streams.find_elements(By.CSS_SELECTOR, answered))
        assert status[0].text.strip().startswith("200"), status[0].text
        urls = [json.loads(entry["message"])["message"]["params"]["request"]["url"]
                for entry in driver.get_log("performance")
                if json.loads(entry["message"])["message"]["method"] == "Network.requestWillBeSent"]
    finally:
        driver.quit()
    elsewhere = [u for u in urls if not u.startswith(("data:", "blob:")) and u.split("://", 1)[-1].split("@")[-1]
                 .split("/", 1)[0] != host]
    assert not elsewhere, f"the docs page fetched from elsewhere: {elsewhere}"
    assert any(u.endswith("/openapi.json") for u in urls) and any(u.endswith("/streams") for u in urls), urls
