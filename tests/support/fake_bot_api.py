"""A minimal fake of the Telegram Bot API for Alertmanager's telegram_configs (tests only).

Answers `sendMessage` (JSON or form body) and `getMe` like api.telegram.org and records every
message with the time it arrived, so a test can say which chat got what, and when.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.fake_telegram import send_json


@dataclass
class SentMessage:
    token: str
    chat_id: int
    text: str
    at: float


class FakeBotApi:
    """`url` is the api_url to give Alertmanager; `messages` what the bots sent."""

    def __init__(self) -> None:
        self.messages: list[SentMessage] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake._answer(self, body)

            def do_GET(self):  # noqa: N802
                query = urllib.parse.urlsplit(self.path).query.encode()
                fake._answer(self, query, form=True)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _answer(self, handler: BaseHTTPRequestHandler, body: bytes, form: bool = False) -> None:
        path = urllib.parse.urlsplit(handler.path).path
        parts = path.strip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith("bot"):
            return send_json(handler, 404, {"ok": False, "error_code": 404,
                                              "description": "Not Found"})
        token, method = parts[0][3:], parts[1]
        content_type = handler.headers.get("Content-Type", "")
        if not form and content_type.startswith("application/json"):
            params = json.loads(body or b"{}")
        else:
            params = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        if method == "getMe":
            return send_json(handler, 200, {"ok": True, "result": {
                "id": 1, "is_bot": True, "first_name": "Дозор", "username": "dozor_test_bot"}})
        if method != "sendMessage":
            return send_json(handler, 404, {"ok": False, "error_code": 404,
                                              "description": "Not Found: method"})
        chat_id = int(params["chat_id"])
        with self._lock:
            self.messages.append(SentMessage(token, chat_id, str(params.get("text", "")),
                                             time.time()))
            message_id = len(self.messages)
        send_json(handler, 200, {"ok": True, "result": {
            "message_id": message_id, "date": int(time.time()),
            "chat": {"id": chat_id, "type": "supergroup", "title": "test"},
            "text": params.get("text", "")}})


    def to(self, chat_id: int, containing: str = "") -> list[SentMessage]:
        """Messages sent to `chat_id` whose text contains `containing`."""
        with self._lock:
            return [m for m in self.messages if m.chat_id == chat_id and containing in m.text]

    def close(self) -> None:
        self.server.shutdown()
