"""A small Telegram Bot API client for `dozor ingest telegram`: getUpdates, getChat,
getChatMember and getMe (the last three for the per-page health check).

- `get_updates` long-polls (``timeout``) for the update types Dozor reads
  (`ALLOWED_UPDATES`) and returns each update with its **raw bytes** exactly as they stood in
  the API's answer (`split_updates`), so the connector can produce them unchanged.
- Network errors, 5xx answers and 409 (another getUpdates of the same bot is running) are
  retried with exponential backoff (capped); 429 waits the ``retry_after`` the API asks for.
  `max_attempts` bounds the attempts (None: retry until it works); the connector uses 5 and
  retries the whole round after a pause, so an outage shows in the per-page failure metric.
- 401 raises `TelegramUnauthorized` at once: the token is wrong or revoked, retrying cannot help.
- The token is part of every URL (``/bot<token>/method``); it never appears in a log line or
  an error message here (URLs are logged redacted, httpx's own request log is silenced).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger("dozor.ingest.telegram")

#: getUpdates `allowed_updates`: what the normaliser turns into events
ALLOWED_UPDATES = ("message", "edited_message", "channel_post", "edited_channel_post")
RETRY_STATUSES = frozenset({409, 500, 502, 503, 504})


class TelegramApiError(Exception):
    """An error answer of the Bot API (`error_code`, `description`) to `method`."""

    def __init__(self, code: int, description: str, method: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(f"Telegram Bot API error {code} in {method}: {description}")
        self.code = code
        self.description = description
        self.method = method
        self.retry_after = retry_after


class TelegramUnauthorized(TelegramApiError):
    """401: the bot token is wrong or was revoked."""

    def __init__(self, method: str = "") -> None:
        super().__init__(401, "Unauthorized", method)
        self.args = (
            "Telegram отклонил токен бота (401 Unauthorized): проверьте DOZOR_TELEGRAM_BOT_TOKEN "
            "(токен выдаёт @BotFather; после /revoke нужен новый). / The Bot API refused the "
            "bot token (401): check DOZOR_TELEGRAM_BOT_TOKEN.",
        )


class TelegramTransportError(Exception):
    """The Bot API could not be reached or answered garbage, after the retries."""


@dataclass(frozen=True)
class RawUpdate:
    """One update: its id, its type (`message`, `channel_post`, ...), parsed and raw forms."""

    update_id: int
    type: str | None
    data: dict[str, Any]
    raw: bytes


def split_updates(body: str) -> list[RawUpdate]:
    """The updates of a getUpdates answer, each with its exact bytes from `body`.

    Re-serialising parsed JSON could change the bytes (key order, escapes, number format);
    the raw topic keeps what Telegram sent, so the array elements are cut out of the answer
    text with the JSON decoder's positions.
    """
    decoder = json.JSONDecoder()
    whole = json.loads(body)
    if not isinstance(whole, dict) or not isinstance(whole.get("result"), list):
        raise ValueError("getUpdates answer has no 'result' array")
    pos = _skip(body, 0)
    if body[pos] != "{":
        raise ValueError("getUpdates answer is not an object")
    pos += 1
    while True:
        pos = _skip(body, pos)
        if body[pos] == "}":
            raise ValueError("getUpdates answer has no 'result' array")
        key, pos = decoder.raw_decode(body, pos)
        pos = _skip(body, pos)
        if body[pos] != ":":
            raise ValueError("malformed getUpdates answer")
        pos = _skip(body, pos + 1)
        if key == "result":
            break
        _, pos = decoder.raw_decode(body, pos)
        pos = _skip(body, pos)
        if body[pos] == ",":
            pos += 1
    # at the '[' of "result"
    out: list[RawUpdate] = []
    pos = _skip(body, pos + 1)
    if body[pos] == "]":
        return out
    while True:
        start = pos
        item, pos = decoder.raw_decode(body, pos)
        if not isinstance(item, dict) or not _is_int(item.get("update_id")):
            raise ValueError("getUpdates result holds an item without an integer update_id")
        kind = next((k for k in item if k != "update_id"), None)
        out.append(RawUpdate(item["update_id"], kind, item, body[start:pos].encode()))
        pos = _skip(body, pos)
        if body[pos] == "]":
            return out
        if body[pos] != ",":
            raise ValueError("malformed getUpdates result array")
        pos = _skip(body, pos + 1)


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    if pos >= len(text):
        raise ValueError("getUpdates answer ends too early")
    return pos


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class TelegramClient:
    """Bot API calls with retries; one per process (keeps one HTTP connection pool).

    `on_call(outcome, code)` is told about every HTTP attempt: outcome ``ok``, ``api_error``
    (with the Bot API error code) or ``http_error`` (network failure, code None) — the
    connector turns that into contract-D metrics.
    """

    def __init__(
        self,
        token: str,
        base_url: str = "https://api.telegram.org",
        *,
        max_attempts: int | None = None,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        on_call: Callable[[str, int | None], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._on_call = on_call or (lambda outcome, code: None)
        # read timeouts are set per call (a long poll holds the request `timeout` seconds)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0),
                                       transport=transport)
        # httpx logs every request URL at INFO, and the URL holds the token
        logging.getLogger("httpx").setLevel(logging.WARNING)

    @property
    def bot_id(self) -> str:
        """The public part of the token (the bot's user id), safe to log and to key by."""
        return self._token.split(":", 1)[0]

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> TelegramClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def get_updates(
        self, offset: int | None, timeout: int = 25, limit: int = 100,
        allowed_updates: Sequence[str] = ALLOWED_UPDATES,
    ) -> list[RawUpdate]:
        """Long-poll for updates from `offset` on (confirming everything below it)."""
        params: dict[str, Any] = {
            "timeout": timeout, "limit": limit,
            "allowed_updates": json.dumps(list(allowed_updates)),
        }
        if offset is not None:
            params["offset"] = offset
        body = await self._call("getUpdates", params, read_timeout=timeout + 15.0)
        try:
            return split_updates(body)
        except (ValueError, IndexError) as exc:
            raise TelegramTransportError(f"getUpdates: unreadable answer: {exc}") from None

    async def get_chat(self, chat_id: int | str) -> dict[str, Any]:
        """getChat: the ChatFullInfo (title, username, linked_chat_id, ...)."""
        body = await self._call("getChat", {"chat_id": chat_id}, read_timeout=30.0)
        return json.loads(body)["result"]

    @property
    def bot_user_id(self) -> int:
        """The bot's own user id (the number before the colon of every bot token)."""
        return int(self.bot_id)

    async def get_chat_member(self, chat_id: int | str, user_id: int) -> dict[str, Any]:
        """getChatMember: the ChatMember (``status``: creator, administrator, member,
        restricted, left, kicked) of `user_id` in `chat_id`."""
        body = await self._call("getChatMember", {"chat_id": chat_id, "user_id": user_id},
                                read_timeout=30.0)
        return json.loads(body)["result"]

    async def get_me(self) -> dict[str, Any]:
        """getMe: the bot's User (``can_read_all_group_messages``: privacy mode is off)."""
        body = await self._call("getMe", {}, read_timeout=30.0)
        return json.loads(body)["result"]

    async def _call(self, method: str, params: dict[str, Any], read_timeout: float) -> str:
        """The answer text of a successful call; retries what is worth retrying."""
        url = f"{self.base_url}/bot{self._token}/{method}"
        redacted = f"{self.base_url}/bot{self.bot_id}:***/{method}"
        attempt = 0
        while True:
            attempt += 1
            delay: float | None = None
            try:
                response = await self._http.post(
                    url, data=params,
                    timeout=httpx.Timeout(read_timeout, connect=10.0),
                )
                text = response.text
                answer = _decode(text)
            except (httpx.TransportError, ValueError) as exc:
                self._on_call("http_error", None)
                error: Exception = TelegramTransportError(
                    f"{method}: {redacted} unreachable or garbled: {type(exc).__name__} {exc}"
                )
                delay = self._backoff(attempt)
            else:
                if answer.get("ok") is True:
                    self._on_call("ok", None)
                    return text
                code = int(answer.get("error_code") or response.status_code)
                description = str(answer.get("description") or response.reason_phrase)
                self._on_call("api_error", code)
                if code == 401:
                    raise TelegramUnauthorized(method)
                retry_after = (answer.get("parameters") or {}).get("retry_after")
                error = TelegramApiError(code, description, method, retry_after)
                if code == 429:
                    delay = float(retry_after) if retry_after is not None else self._backoff(
                        attempt)
                elif code in RETRY_STATUSES:
                    delay = self._backoff(attempt)
                else:
                    raise error
            if self.max_attempts is not None and attempt >= self.max_attempts:
                raise error
            log.warning("telegram: %s failed (%s); retry %d in %.1f s", redacted, error,
                        attempt, delay)
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)  # jitter: many bots do not retry in step


def _decode(text: str) -> dict[str, Any]:
    answer = json.loads(text)
    if not isinstance(answer, dict):
        raise ValueError("the Bot API answer is not a JSON object")
    return answer
