"""A small HTTP client for the service: bearer token, JSON, and one-line errors."""

from __future__ import annotations

import os
from typing import Any

import httpx

TOKEN_ENV = "UNIPELT_API_TOKEN"
URL_ENV = "UNIPELT_URL"
TIMEOUT_S = 60.0


class ClientError(Exception):
    """A request failed: connection, HTTP status or an unreadable answer (one line)."""


class Client:
    def __init__(self, url: str, token: str | None = None, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        token = token or os.environ.get(TOKEN_ENV) or None
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout_s = timeout_s

    def __repr__(self) -> str:  # never shows the token
        return f"Client({self.url!r})"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of a 2xx response; anything else raises ClientError."""
        try:
            response = httpx.request(
                method,
                f"{self.url}{path}",
                headers=self._headers,
                timeout=self.timeout_s,
                **kwargs,
            )
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise ClientError(f"cannot reach {self.url}: {reason}") from None
        if response.status_code >= 400:
            raise ClientError(f"{method} {path}: HTTP {response.status_code}: {_reason(response)}")
        try:
            return response.json()
        except ValueError:
            raise ClientError(f"{method} {path}: the answer is not JSON") from None


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        lines = (response.text or response.reason_phrase or "no detail").strip().splitlines()
        return (lines[0] if lines else "no detail")[:300]
    if isinstance(body, dict) and "error" in body:
        detail = body.get("detail")
        return f"{body['error']}: {detail}" if detail else str(body["error"])
    return str(body)[:300]
