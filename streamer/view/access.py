"""Who may see the live view: the holder of the API token (streamer/service/auth.py).

A browser cannot put an ``Authorization`` header on an ``<img>`` or an ``EventSource``,
so the token is given once, in the login form or as ``?token=`` on any page, and the
page answers with an HttpOnly, SameSite=Strict cookie holding a value derived from the
token (an HMAC, so the cookie is not the token itself: it opens the view, not the API).
Every later request is checked against that cookie, or a bearer header for scripts.
Without a token (an open API on loopback) the view is open too.
"""
from __future__ import annotations

import hashlib
import hmac

from streamer.service.auth import token_ok

COOKIE = "facestream_view"
_PURPOSE = b"facestream live view cookie"


def cookie_value(token: str) -> str:
    """What the view's cookie holds for ``token``."""
    return hmac.new(token.encode(), _PURPOSE, hashlib.sha256).hexdigest()


def allowed(token: str | None, cookies: dict[str, str], headers: dict[str, str]) -> bool:
    """Whether a request with these cookies and lower-cased headers may see the view."""
    if token is None:
        return True
    if token_ok(headers, token):
        return True
    given = cookies.get(COOKIE, "")
    return bool(given) and hmac.compare_digest(given.encode(), cookie_value(token).encode())


def token_matches(token: str | None, given: str) -> bool:
    """Whether ``given`` (from the login form or ``?token=``) is the token."""
    return token is not None and hmac.compare_digest(given.strip().encode(), token.encode())


def safe_next(path: str | None) -> str:
    """Where to go after logging in: a path of this site only (never ``//host``)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path
