"""A small VK API client for the poller and `dozor pages check`.

- One `TokenBucket` per token, shared by every page that uses the token (`RateLimiters`):
  VK counts requests per token, not per page. Requests are spaced at least 1/rate apart
  (bucket depth 1: no bursts), slightly slower than the setting (`SAFETY`) so that network
  jitter never makes VK see more than `rate` requests in a second.
- Errors 6 (too many requests) and 9 (flood control), 10 (internal error) and transport
  failures are retried with exponential backoff; other API errors raise `VkApiError` at once
  so that the caller can report them per page (5: token revoked, 15: access denied,
  18: page deleted or banned, 30: profile is private).
- `execute` batches up to 25 calls into one request (VKScript `return [API.m({...}), ...];`);
  a failed inner call comes back as `false` with an entry in `execute_errors`, which
  `execute` turns into a `VkApiError` in that call's slot.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from services.ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)

RETRY_CODES = frozenset({6, 9, 10})
#: errors that concern one page (its token or its wall); Russian reasons for operators
PAGE_ERRORS = {
    5: "токен недействителен или отозван (ошибка 5)",
    15: "нет доступа к стене (ошибка 15)",
    18: "страница удалена или заблокирована (ошибка 18)",
    30: "профиль или сообщество закрыто (ошибка 30)",
}
EXECUTE_MAX_CALLS = 25
#: the limiter runs this much below the configured rate (jitter margin, see module doc)
SAFETY = 0.95


class VkApiError(Exception):
    """An error answer of the VK API (`error_code`, `error_msg`) for `method`."""

    def __init__(self, code: int, message: str, method: str = "") -> None:
        super().__init__(f"VK API error {code} in {method}: {message}")
        self.code = code
        self.message = message
        self.method = method

    @property
    def reason(self) -> str:
        """A short Russian reason for operators."""
        return PAGE_ERRORS.get(self.code, f"ошибка VK API {self.code}: {self.message}")


class VkTransportError(Exception):
    """VK could not be reached or answered garbage, after the retries."""


class TokenBucket:
    """Token bucket of depth `burst` refilled at `rate` per second; `acquire` waits a token."""

    def __init__(self, rate: float, burst: float = 1.0,
                 clock: Callable[[], float] | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._tokens = burst
        self._last: float | None = None
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until a request may be sent; callers are served in arrival order."""
        async with self._lock:
            now = self._clock()
            if self._last is not None:
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens < 1.0:
                wait = (1.0 - self._tokens) / self.rate
                await asyncio.sleep(wait)
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
            self._tokens -= 1.0


class RateLimiters:
    """One TokenBucket per token; the lowest rate any page gives for the token applies."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def get(self, key: str, rate: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate * SAFETY)
        elif rate * SAFETY < bucket.rate:
            # two pages name one token with different rates: the lower one is the truth
            bucket.rate = rate * SAFETY
        return bucket


@dataclass
class Token:
    """A token as the client uses it: its secret name (for log lines), value and rate."""

    name: str
    value: str
    rate: float

    @property
    def limiter_key(self) -> str:
        """VK limits per token value: two secret names holding one token share a bucket."""
        return hashlib.sha256(self.value.encode()).hexdigest()[:16]


class VkApi:
    """VK API calls with per-token rate limiting and retries; see the module docstring."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        version: str,
        limiters: RateLimiters | None = None,
        metrics: IngestMetrics | None = None,
        connector: str = "vk-poll",
        max_retries: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 16.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.version = version
        self.limiters = limiters or RateLimiters()
        self.metrics = metrics
        self.connector = connector
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep

    async def call(self, token: Token, method: str, **params: Any) -> Any:
        """Call `method`; returns its `response`, raises VkApiError / VkTransportError."""
        data = {k: _param(v) for k, v in params.items() if v is not None}
        data["access_token"] = token.value
        data["v"] = self.version
        limiter = self.limiters.get(token.limiter_key, token.rate)
        attempt = 0
        while True:
            await limiter.acquire()
            try:
                answer = await self._post(method, data)
            except VkTransportError as exc:
                self._count("http_error")
                if attempt >= self.max_retries:
                    raise
                log.warning("VK %s: %s; retrying", method, exc)
            else:
                error = answer.get("error")
                if not error:
                    self._count("ok")
                    return answer
                code = int(error.get("error_code", 0))
                self._count("api_error")
                if self.metrics is not None:
                    self.metrics.api_error(self.connector, code)
                if code not in RETRY_CODES or attempt >= self.max_retries:
                    raise VkApiError(code, str(error.get("error_msg", "")), method)
            delay = min(self.backoff_max, self.backoff_base * 2**attempt)
            await self._sleep(delay * (0.5 + random.random() / 2))
            attempt += 1

    async def method(self, token: Token, method: str, **params: Any) -> Any:
        """`call` that returns only the `response` field."""
        return (await self.call(token, method, **params))["response"]

    async def execute(
        self, token: Token, calls: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[Any]:
        """Run up to 25 calls in one `execute`; a failed call's slot holds its VkApiError."""
        if not calls:
            return []
        if len(calls) > EXECUTE_MAX_CALLS:
            raise ValueError(f"execute takes at most {EXECUTE_MAX_CALLS} calls")
        code = "return [" + ",".join(
            f"API.{name}({json.dumps(params, ensure_ascii=False)})" for name, params in calls
        ) + "];"
        answer = await self.call(token, "execute", code=code)
        results = answer.get("response")
        if not isinstance(results, list) or len(results) != len(calls):
            raise VkTransportError(f"execute answered {str(results)[:80]!r}")
        errors = list(answer.get("execute_errors") or [])
        out: list[Any] = []
        for (name, _), result in zip(calls, results):
            if result is False:
                err = errors.pop(0) if errors else {"error_code": 0, "error_msg": "unknown"}
                code_ = int(err.get("error_code", 0))
                if self.metrics is not None:
                    self.metrics.api_error(self.connector, code_)
                out.append(VkApiError(code_, str(err.get("error_msg", "")), name))
            else:
                out.append(result)
        return out

    async def _post(self, method: str, data: dict[str, str]) -> dict[str, Any]:
        try:
            response = await self.http.post(f"{self.base_url}/{method}", data=data)
        except httpx.HTTPError as exc:
            raise VkTransportError(f"{type(exc).__name__}") from None
        if response.status_code >= 500:
            raise VkTransportError(f"HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            raise VkTransportError(f"HTTP {response.status_code}: not JSON") from None
        if not isinstance(answer, dict):
            raise VkTransportError("answer is not a JSON object")
        return answer

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.request(self.connector, outcome)


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
