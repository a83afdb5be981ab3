"""A local HTTP server that behaves like the Telegram Bot API for the methods Dozor calls.

    with FakeTelegram(token="123:abc") as fake:
        fake.add_update(tg.channel_post(42, "Пост"))       # queue updates
        fake.add_chat(tg.channel_chat(), linked_chat_id=tg.GROUP_ID)
        ... point the connector at fake.url (DOZOR_TELEGRAM_API_URL) ...
        fake.calls                                        # [(method, params), ...]

Behaviour copied from the Bot API documentation (``getUpdates``, ``getChat``, error replies):

- ``POST|GET /bot<token>/<method>``, parameters as query string, form or JSON body; every reply
  is ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description"[,
  "parameters": {"retry_after"}]}`` with the same HTTP status as ``error_code``.
- a token other than the configured one → 401 ``Unauthorized``;
- ``getUpdates``: ``offset`` confirms (forgets for good) every update below it; without it the
  earliest unconfirmed updates come back (so a client that never confirms gets them again);
  ``limit`` 1-100 (default 100); ``allowed_updates`` (a JSON list) filters by update type and
  is remembered for later calls without it; ``timeout`` > 0 holds the request until an update
  arrives or the timeout (capped at `max_poll_seconds`, so tests stay fast) passes;
- ``getChat``: the ChatFullInfo of a chat added with `add_chat`, else 400 ``chat not found``;
- ``getChatMember``: the ChatMember set with `set_member` (``administrator``, ``creator``,
  ``member``, ``restricted``, ``left``, ``kicked``; schema-valid objects), ``left`` for anyone
  else in a known chat, 400 ``chat not found`` for an unknown chat;
- `forbid(chat_id)`: the bot was removed from the chat: getChat / getChatMember answer 403
  ``Forbidden: bot is not a member of the channel chat`` (as Telegram does);
- ``getMe``: the bot; ``can_read_all_group_messages`` is True once `privacy_mode` is False;
- injected failures: `rate_limit(n, retry_after)` answers the next n calls with 429 and
  ``parameters.retry_after``; `drop(n)` closes the next n connections without an answer (a
  network error for the client); `fail(n, code)` answers them with another error code.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.telegram_payloads import chat_full_info

UPDATE_TYPES = (
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages",
    "message_reaction", "message_reaction_count", "inline_query", "chosen_inline_result",
    "callback_query", "shipping_query", "pre_checkout_query", "purchased_paid_media", "poll",
    "poll_answer", "my_chat_member", "chat_member", "chat_join_request", "chat_boost",
    "removed_chat_boost",
)


@dataclass
class _Failure:
    kind: str  # "429", "drop", "error"
    code: int = 0
    retry_after: int = 0


@dataclass
class FakeTelegram:
    """The fake Bot API; a context manager running a threaded HTTP server on 127.0.0.1."""

    token: str = "123456:TEST-token"
    max_poll_seconds: float = 2.0
    updates: list[dict[str, Any]] = field(default_factory=list)
    chats: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    confirmed_below: int = 0
    allowed_updates: list[str] | None = None
    members: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    forbidden: set[int] = field(default_factory=set)
    privacy_mode: bool = True

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._failures: list[_Failure] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- test control -------------------------------------------------------------------

    def add_update(self, update: dict[str, Any]) -> None:
        """Queue an update (ids must increase, as Telegram's do); wakes a waiting long poll."""
        with self._cond:
            if self.updates and update["update_id"] <= self.updates[-1]["update_id"]:
                raise ValueError("update ids must increase")
            self.updates.append(update)
            self._cond.notify_all()

    def add_chat(self, chat: dict[str, Any], linked_chat_id: int | None = None) -> None:
        self.chats[chat["id"]] = chat_full_info(chat, linked_chat_id)

    @property
    def bot_id(self) -> int:
        return int(self.token.split(":")[0])

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        """Give `user_id` a status in `chat_id` (`chat_member` builds the ChatMember)."""
        self.members[(chat_id, user_id)] = chat_member(status, user_id, self.bot_id)

    def forbid(self, chat_id: int) -> None:
        """The bot was removed from the chat (or banned): Telegram answers 403 for it."""
        self.forbidden.add(chat_id)

    def rate_limit(self, times: int = 1, retry_after: int = 1) -> None:
        self._failures += [_Failure("429", 429, retry_after)] * times

    def drop(self, times: int = 1) -> None:
        self._failures += [_Failure("drop")] * times

    def fail(self, times: int, code: int) -> None:
        self._failures += [_Failure("error", code)] * times

    def method_calls(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in list(self.calls) if name == method]

    @property
    def url(self) -> str:
        assert self._server is not None, "use FakeTelegram as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeTelegram:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                fake._handle(self)

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- the API ------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        params: dict[str, Any] = dict(parse_qsl(parts.query))
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        if body:
            ctype = request.headers.get("Content-Type", "")
            if ctype.startswith("application/json"):
                params.update(json.loads(body))
            else:
                params.update(parse_qsl(body.decode()))
        segments = parts.path.strip("/").split("/")
        if len(segments) != 2 or not segments[0].startswith("bot"):
            return send_json(request, 404, {"ok": False, "error_code": 404,
                                              "description": "Not Found"})
        token, method = segments[0][3:], segments[1]
        self.calls.append((method, params))
        if self._failures:
            failure = self._failures.pop(0)
            if failure.kind == "drop":
                request.close_connection = True
                request.connection.close()  # no answer at all: a network error for the client
                return
            if failure.kind == "429":
                return self._error(request, 429,
                                   f"Too Many Requests: retry after {failure.retry_after}",
                                   retry_after=failure.retry_after)
            return self._error(request, failure.code, "Internal Server Error"
                               if failure.code >= 500 else "Bad Request")
        if token != self.token:
            return self._error(request, 401, "Unauthorized")
        if method == "getUpdates":
            return self._get_updates(request, params)
        if method == "getChat":
            return self._get_chat(request, params)
        if method == "getChatMember":
            return self._get_chat_member(request, params)
        if method == "getMe":
            return self._ok(request, {**bot_user(self.bot_id),
                                      "can_read_all_group_messages": not self.privacy_mode})
        return self._error(request, 404, "Not Found: method not found")

    def _get_updates(self, request, params: dict[str, Any]) -> None:
        try:
            offset = int(params["offset"]) if "offset" in params else None
            limit = int(params.get("limit", 100))
            timeout = float(params.get("timeout", 0))
            allowed = params.get("allowed_updates")
            if isinstance(allowed, str):
                allowed = json.loads(allowed)
        except (TypeError, ValueError):
            return self._error(request, 400, "Bad Request: invalid parameters")
        if not 1 <= limit <= 100:
            return self._error(request, 400, "Bad Request: limit must be 1-100")
        if allowed is not None:
            if not isinstance(allowed, list) or not all(a in UPDATE_TYPES for a in allowed):
                return self._error(request, 400, "Bad Request: wrong allowed_updates")
            self.allowed_updates = allowed
        deadline = time.monotonic() + min(timeout, self.max_poll_seconds)
        with self._cond:
            if offset is not None and offset > self.confirmed_below:
                # "An update is considered confirmed as soon as getUpdates is called with an
                # offset higher than its update_id": confirmed updates are gone for good.
                self.confirmed_below = offset
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while True:
                ready = [u for u in self.updates if self._allowed(u)][:limit]
                remaining = deadline - time.monotonic()
                if ready or remaining <= 0:
                    break
                self._cond.wait(remaining)
        return self._ok(request, ready)

    def _allowed(self, update: dict[str, Any]) -> bool:
        if not self.allowed_updates:
            return True
        return any(kind in update for kind in self.allowed_updates)

    def _get_chat(self, request, params: dict[str, Any]) -> None:
        try:
            chat_id = int(params.get("chat_id"))
        except (TypeError, ValueError):
            chat_id = None
        if chat_id in self.forbidden:
            return self._error(request, 403, "Forbidden: bot is not a member of the channel chat")
        chat = self.chats.get(chat_id)
        if chat is None:
            return self._error(request, 400, "Bad Request: chat not found")
        return self._ok(request, chat)

    def _get_chat_member(self, request, params: dict[str, Any]) -> None:
        try:
            chat_id, user_id = int(params.get("chat_id")), int(params.get("user_id"))
        except (TypeError, ValueError):
            return self._error(request, 400, "Bad Request: invalid user_id specified")
        if chat_id in self.forbidden:
            return self._error(request, 403, "Forbidden: bot is not a member of the channel chat")
        if chat_id not in self.chats:
            return self._error(request, 400, "Bad Request: chat not found")
        member = self.members.get((chat_id, user_id))
        return self._ok(request, member or chat_member("left", user_id, self.bot_id))

    def _ok(self, request, result: Any) -> None:
        send_json(request, 200, {"ok": True, "result": result})

    def _error(self, request, code: int, description: str, retry_after: int | None = None):
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        send_json(request, code, body)



def bot_user(bot_id: int) -> dict[str, Any]:
    """The bot as a User."""
    return {"id": bot_id, "is_bot": True, "first_name": "Dozor", "username": "dozor_test_bot"}


def chat_member(status: str, user_id: int, bot_id: int | None = None) -> dict[str, Any]:
    """A ChatMember of the given status with every field the Bot API marks required."""
    user = bot_user(user_id) if user_id == bot_id else {
        "id": user_id, "is_bot": False, "first_name": "Участник"}
    if status == "administrator":
        rights = ("can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                  "can_restrict_members", "can_change_info", "can_invite_users",
                  "can_post_stories", "can_edit_stories", "can_delete_stories",
                  "can_post_messages", "can_edit_messages")
        return {"status": status, "user": user, "can_be_edited": False, "is_anonymous": False,
                "can_promote_members": False, **{r: True for r in rights}}
    if status == "creator":
        return {"status": status, "user": user, "is_anonymous": False}
    if status in ("member", "left"):
        return {"status": status, "user": user}
    if status == "kicked":
        return {"status": status, "user": user, "until_date": 0}
    if status == "restricted":
        flags = ("can_send_messages", "can_send_audios", "can_send_documents",
                 "can_send_photos", "can_send_videos", "can_send_video_notes",
                 "can_send_voice_notes", "can_send_polls", "can_send_other_messages",
                 "can_add_web_page_previews", "can_react_to_messages", "can_edit_tag",
                 "can_change_info", "can_invite_users", "can_pin_messages",
                 "can_manage_topics")
        return {"status": status, "user": user, "is_member": True, "until_date": 0,
                **{f: False for f in flags}}
    raise ValueError(f"unknown ChatMember status {status!r}")


def send_json(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
    """Answer an HTTP request with `body` as JSON, as the Bot API does."""
    data = json.dumps(body, ensure_ascii=False).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)
