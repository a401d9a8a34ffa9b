"""Errors the API answers with a status code and a JSON body, never a traceback."""
from __future__ import annotations


class ApiError(Exception):
    """A request that cannot be served as asked: ``status`` is the HTTP status, ``code``
    a stable machine-readable word, the message says why in words."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}

    def __reduce__(self):  # travels through Ray intact
        return (ApiError, (self.status, self.code, self.message))
