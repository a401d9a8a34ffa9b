"""Who may use the API: the bearer token, and whether the service may listen without one.

An API without a token lets anyone who reaches it start streams, and so make the service
open connections (within the network policy) and spend its GPUs. That is a fine default
on loopback, where only this machine reaches it, and a mistake anywhere else: listening
beyond loopback without a token is refused unless ``service.insecure_open_api`` (the
``--insecure-open-api`` flag of ``facestream serve``) says it is meant.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import os
from pathlib import Path

from streamer.config import Config
from streamer.service.errors import ApiError

TOKEN_ENV = "FACESTREAM_API_TOKEN"


def api_token(cfg: Config) -> str | None:
    """The bearer token clients must present, or None for an open API.

    From ``FACESTREAM_API_TOKEN``, else from the file ``service.api_token_file``; the
    token is never logged or echoed.
    """
    token = os.environ.get(TOKEN_ENV)
    if not token and cfg.service.api_token_file:
        try:
            token = Path(cfg.service.api_token_file).read_text().strip()
        except OSError as e:
            raise ApiError(500, "token_file", f"cannot read service.api_token_file: {e.strerror}") from None
    return token or None


def token_ok(headers: dict, token: str) -> bool:
    """Whether lower-cased ``headers`` carry ``Authorization: Bearer <token>``, or HTTP
    Basic credentials whose password is the token (any user name): what a browser sends
    after its login prompt, the one way a page it opens (``/docs``) can carry the token."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        password = _basic_password(value.strip())
        if password is None:
            return False
        value = password
    elif scheme != "bearer":
        return False
    # compare_digest: the time taken must not tell how much of a guess was right
    return hmac.compare_digest(value.strip().encode(), token.encode())


def _basic_password(credentials: str) -> str | None:
    """The password of Basic ``credentials`` (base64 of ``user:password``), None if malformed."""
    try:
        user_pass = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, colon, password = user_pass.partition(":")
    return password if colon else None


def open_api_refusal(cfg: Config, listen_host: str, exposed: bool, token: str | None) -> str | None:
    """Why the service must not start as configured, or None: listening beyond loopback
    (``exposed``) with no token and no ``service.insecure_open_api``."""
    if not exposed or token is not None or cfg.service.insecure_open_api:
        return None
    return (f"refusing to listen on {listen_host} without an API token: anyone who reaches it could "
            f"submit streams. Set {TOKEN_ENV} or service.api_token_file, listen on 127.0.0.1, or pass "
            "--insecure-open-api (service.insecure_open_api: true) if that is meant")
