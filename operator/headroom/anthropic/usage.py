"""`GET /api/oauth/usage` over HTTP: one read per call, every answer turned into a value.

The token travels only in the Authorization header. No answer, exception text or log line
of this module carries it: errors are reduced to a kind and a status code, never to the
request (aiohttp's exceptions can quote request headers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

PATH = "/api/oauth/usage"
BETA = "oauth-2025-04-20"  # the anthropic-beta Claude Code 2.1.330 sends with OAuth requests
DEFAULT_BASE_URL = "https://api.anthropic.com"
MAX_BODY = 64 * 1024  # a usage report is a few hundred bytes


@dataclass(frozen=True)
class Report:
    doc: Any


@dataclass(frozen=True)
class RateLimited:
    retry_after: float | None


@dataclass(frozen=True)
class Denied:
    """403: this credential may not read usage (no user:profile scope, or not OAuth)."""

    error_type: str


@dataclass(frozen=True)
class Unauthorized:
    """401: the endpoint does not accept the token at all."""


@dataclass(frozen=True)
class Failed:
    """No usable answer: a timeout, a connection error, a 5xx, an unreadable body."""

    kind: str


Answer = Report | RateLimited | Denied | Unauthorized | Failed


class UsageApi:
    """Reads usage from `base_url` with one shared HTTP session and a per-request timeout."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.url = base_url.rstrip("/") + PATH
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def read(self, token: str) -> Answer:
        headers = {"Authorization": f"Bearer {token}", "anthropic-beta": BETA}
        try:
            async with self._client().get(self.url, headers=headers) as response:
                return await _answer(response)
        except TimeoutError:
            return Failed("timeout")
        except aiohttp.ClientError as exc:
            return Failed(type(exc).__name__)  # the class only: its text may quote headers

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session


async def _answer(response: aiohttp.ClientResponse) -> Answer:
    status = response.status
    if status == 429:
        return RateLimited(retry_after(response.headers.get("retry-after")))
    if status == 401:
        return Unauthorized()
    if status == 403:
        return Denied(await _error_type(response))
    if status != 200:
        return Failed(f"http_{status}")
    raw = b""
    async for chunk in response.content.iter_chunked(16 * 1024):
        raw += chunk
        if len(raw) > MAX_BODY:
            return Failed("body_too_large")
    try:
        return Report(json.loads(raw))
    except ValueError:
        return Failed("unreadable_body")


async def _error_type(response: aiohttp.ClientResponse) -> str:
    try:
        doc = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return "unknown"
    error = doc.get("error") if isinstance(doc, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind[:64] if isinstance(kind, str) else "unknown"


def retry_after(value: str | None) -> float | None:
    """retry-after in seconds (the endpoint sends a number; an HTTP date is not honoured)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None
