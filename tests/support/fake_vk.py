"""A local HTTP server that behaves like the parts of the VK API Dozor's poller uses.

Methods: ``wall.get``, ``wall.getComments`` (top level with ``thread_items_count`` ≤ 10, or one
thread with ``comment_id``; ``offset``/``count`` ≤ 100), ``execute`` (the VKScript subset the
client sends: ``return [API.method({json}), ...];``, at most 25 calls; a failed inner call is
``false`` plus an ``execute_errors`` entry, as VK does). Answers are shaped by the official
schema (vk-api-schema v5.199; tests/ingest/test_vk_fake_schema.py validates them).

Changes: `edit_comment(owner_id, comment_id, text)`, `delete_comment(...)`, `restore_comment(...)`.
As VK does, a deleted comment leaves ``comments.count``, the thread ``count`` and the listing,
except a top-level comment that still has replies: it stays listed as ``{"deleted": true,
"text": ""}`` with its thread. VK keeps no edit date, so an edit shows only in the text.

Error injection: `fail_next(code, times, token=None, after=0)` (e.g. bursts of 6 or 9 on a
token; `after`: let that many matching requests through first, so a burst hits in the middle
of a read),
`revoke(token)` (error 5 for every call with it), `wall_error(owner_id, code)` (15 / 18 / 30 for
a wall). The server records the arrival time of every request per token (`request_times`,
`max_requests_in_window`) so tests can check the client's rate limit.

Runs in a thread of the test process (ThreadingHTTPServer), so a poller in a subprocess can
call it too.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

ERROR_MESSAGES = {
    5: "User authorization failed: invalid access_token (4).",
    6: "Too many requests per second",
    9: "Flood control",
    15: "Access denied: this wall available only for community members",
    18: "User was deleted or banned",
    30: "This profile is private",
    100: "One of the parameters specified was missing or invalid",
}
CALL_RE = re.compile(r"API\.([A-Za-z]+\.[A-Za-z]+)\((\{[^{}]*\})\)")


class VkError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Comment:
    id: int
    post_id: int
    from_id: int
    date: int
    text: str
    thread_root: int | None = None  # top-level comment this reply belongs to
    reply_to_comment: int | None = None
    reply_to_user: int | None = None
    deleted: bool = False


@dataclass
class Post:
    id: int
    from_id: int
    date: int
    text: str
    comments: list[Comment] = field(default_factory=list)


@dataclass
class Wall:
    owner_id: int
    posts: dict[int, Post] = field(default_factory=dict)
    next_id: int = 1
    error: int | None = None


class FakeVk:
    """The fake VK API; `url` is the base URL (``http://127.0.0.1:PORT/method``)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.walls: dict[int, Wall] = {}
        self.tokens: dict[str, str] = {}  # value -> name, only for reports
        self.revoked: set[str] = set()
        self.delay = delay
        self._failures: list[list] = []  # [code, remaining, token or None, requests to let pass]
        self.request_log: list[tuple[float, str, str]] = []  # (monotonic, token, method)
        self.calls: list[tuple[str, str, dict]] = []  # (token, method, params) incl. inside execute
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # --- content ------------------------------------------------------------------------
    def wall(self, owner_id: int) -> Wall:
        return self.walls.setdefault(owner_id, Wall(owner_id))

    def add_post(self, owner_id: int, text: str, date: int, from_id: int | None = None) -> int:
        with self.lock:
            wall = self.wall(owner_id)
            post = Post(wall.next_id, owner_id if from_id is None else from_id, date, text)
            wall.next_id += 1
            wall.posts[post.id] = post
            return post.id

    def add_comment(self, owner_id: int, post_id: int, text: str, date: int, from_id: int,
                    reply_to: int | None = None) -> int:
        """A comment; `reply_to` = a comment id makes it a thread reply (VK threads are one
        level deep: a reply to a reply joins the same thread with reply_to_comment set)."""
        with self.lock:
            wall = self.wall(owner_id)
            post = wall.posts[post_id]
            root = reply_to_user = None
            if reply_to is not None:
                parent = next(c for c in post.comments if c.id == reply_to)
                root = parent.thread_root or parent.id
                reply_to_user = parent.from_id
            comment = Comment(wall.next_id, post_id, from_id, date, text, root, reply_to,
                              reply_to_user)
            wall.next_id += 1
            post.comments.append(comment)
            return comment.id

    def _comment(self, owner_id: int, comment_id: int) -> Comment:
        for post in self.wall(owner_id).posts.values():
            for c in post.comments:
                if c.id == comment_id:
                    return c
        raise KeyError(comment_id)

    def edit_comment(self, owner_id: int, comment_id: int, text: str) -> None:
        """The author edits the comment (VK keeps id and date; no edit timestamp is shown)."""
        with self.lock:
            self._comment(owner_id, comment_id).text = text

    def delete_comment(self, owner_id: int, comment_id: int) -> None:
        with self.lock:
            self._comment(owner_id, comment_id).deleted = True

    def restore_comment(self, owner_id: int, comment_id: int) -> None:
        with self.lock:
            self._comment(owner_id, comment_id).deleted = False

    # --- errors -------------------------------------------------------------------------
    def fail_next(self, code: int, times: int = 1, token: str | None = None,
                  after: int = 0) -> None:
        """Answer `times` requests (with `token`, or any) with error `code`, after letting
        `after` of them through."""
        with self.lock:
            self._failures.append([code, times, token, after])

    def revoke(self, token: str) -> None:
        self.revoked.add(token)

    def wall_error(self, owner_id: int, code: int | None) -> None:
        self.wall(owner_id).error = code

    # --- measurements -------------------------------------------------------------------
    def request_times(self, token: str) -> list[float]:
        with self.lock:
            return [t for t, tok, _ in self.request_log if tok == token]

    def max_requests_in_window(self, token: str, window: float = 1.0) -> int:
        """Most requests with this token that arrived within any half-open `window` seconds."""
        times = sorted(self.request_times(token))
        best = start = 0
        for end, t in enumerate(times):
            while times[start] <= t - window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def requests_total(self, token: str | None = None) -> int:
        with self.lock:
            return sum(1 for _, tok, _ in self.request_log if token is None or tok == token)

    # --- API ----------------------------------------------------------------------------
    def handle(self, method: str, params: dict[str, str]) -> dict[str, Any]:
        token = params.get("access_token", "")
        with self.lock:
            self.request_log.append((time.monotonic(), token, method))
        if self.delay:
            time.sleep(self.delay)
        try:
            if not token or token in self.revoked:
                raise VkError(5)
            with self.lock:
                due = None
                for failure in self._failures:
                    code, remaining, only, wait = failure
                    if remaining <= 0 or (only is not None and only != token):
                        continue
                    if wait > 0:
                        failure[3] -= 1  # this request passes (for this failure)
                    elif due is None:
                        due = failure
                if due is not None:
                    due[1] -= 1
                    raise VkError(due[0])
            if method == "execute":
                return self._execute(token, params.get("code", ""))
            return {"response": self._call(token, method, params)}
        except VkError as exc:
            # inner_type: the official schema (base_error) requires it
            return {"error": {"inner_type": "base_error", "error_code": exc.code,
                              "error_msg": ERROR_MESSAGES.get(exc.code, "error"),
                              "request_params": [{"key": "method", "value": method}]}}

    def _execute(self, token: str, code: str) -> dict[str, Any]:
        calls = CALL_RE.findall(code)
        if not code.startswith("return [") or not calls or len(calls) > 25:
            raise VkError(100)
        results, errors = [], []
        for method, raw in calls:
            try:
                params = {k: str(v) for k, v in json.loads(raw).items()}
                results.append(self._call(token, method, params))
            except VkError as exc:
                results.append(False)
                errors.append({"method": method, "error_code": exc.code,
                               "error_msg": ERROR_MESSAGES.get(exc.code, "error")})
        answer: dict[str, Any] = {"response": results}
        if errors:
            answer["execute_errors"] = errors
        return answer

    def _call(self, token: str, method: str, params: dict[str, str]) -> Any:
        with self.lock:
            self.calls.append((token, method, dict(params)))
            if method == "wall.get":
                return self._wall_get(params)
            if method == "wall.getComments":
                return self._get_comments(params)
        raise VkError(100)

    def _wall_for(self, params: dict[str, str]) -> Wall:
        try:
            owner = int(params["owner_id"])
        except (KeyError, ValueError):
            raise VkError(100) from None
        wall = self.walls.get(owner)
        if wall is None:
            raise VkError(18)
        if wall.error:
            raise VkError(wall.error)
        return wall

    def _wall_get(self, params: dict[str, str]) -> dict[str, Any]:
        wall = self._wall_for(params)
        offset, count = _paging(params, default=20)
        posts = sorted(wall.posts.values(), key=lambda p: -p.id)
        return {"count": len(posts),
                "items": [self._post_json(wall, p) for p in posts[offset:offset + count]]}

    def _get_comments(self, params: dict[str, str]) -> dict[str, Any]:
        wall = self._wall_for(params)
        try:
            post = wall.posts[int(params["post_id"])]
        except (KeyError, ValueError):
            raise VkError(100) from None
        offset, count = _paging(params, default=10)
        thread_items = int(params.get("thread_items_count", 0))
        if not 0 <= thread_items <= 10:
            raise VkError(100)
        desc = params.get("sort") == "desc"
        alive = [c for c in post.comments if not c.deleted]
        if "comment_id" in params:
            root = int(params["comment_id"])
            level = [c for c in alive if c.thread_root == root]
            thread_items = 0
        else:
            # a deleted top-level comment stays listed (as deleted) while it has replies
            level = [c for c in post.comments if c.thread_root is None and (
                not c.deleted or any(r.thread_root == c.id for r in alive))]
        level.sort(key=lambda c: -c.id if desc else c.id)
        items = []
        for c in level[offset:offset + count]:
            item = self._comment_json(wall, c)
            if c.thread_root is None:
                replies = [r for r in alive if r.thread_root == c.id]
                item["thread"] = {
                    "count": len(replies),
                    "items": [self._comment_json(wall, r) for r in replies[:thread_items]],
                    "can_post": True, "show_reply_button": True, "groups_can_post": True,
                }
            items.append(item)
        return {"count": len(alive), "current_level_count": len(level), "items": items,
                "can_post": True, "show_reply_button": True, "groups_can_post": True}

    @staticmethod
    def _post_json(wall: Wall, post: Post) -> dict[str, Any]:
        return {
            "inner_type": "wall_wallpost", "id": post.id, "owner_id": wall.owner_id,
            "from_id": post.from_id, "date": post.date, "text": post.text, "post_type": "post",
            "comments": {"count": sum(not c.deleted for c in post.comments), "can_post": 1,
                         "groups_can_post": True},
            "likes": {"count": 0, "user_likes": 0, "can_like": 1, "can_publish": 1},
            "reposts": {"count": 0, "user_reposted": 0}, "views": {"count": 100},
            "is_favorite": False, "attachments": [],
        }

    @staticmethod
    def _comment_json(wall: Wall, c: Comment) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": c.id, "from_id": c.from_id, "post_id": c.post_id, "owner_id": wall.owner_id,
            "parents_stack": [c.thread_root] if c.thread_root else [], "date": c.date,
            "text": c.text, "likes": {"count": 0, "user_likes": 0, "can_like": 1},
        }
        if c.deleted:
            item["text"] = ""
            item["deleted"] = True
            del item["likes"]
        if c.reply_to_comment is not None:
            item["reply_to_comment"] = c.reply_to_comment
            item["reply_to_user"] = c.reply_to_user
        return item

    # --- server -------------------------------------------------------------------------
    def start(self) -> FakeVk:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                url = urlsplit(self.path)
                params = dict(parse_qsl(url.query))
                params.update(parse_qsl(body, keep_blank_values=True))
                method = url.path.rsplit("/", 1)[-1]
                data = json.dumps(fake.handle(method, params), ensure_ascii=False).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/method"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeVk:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _paging(params: dict[str, str], default: int) -> tuple[int, int]:
    try:
        offset = int(params.get("offset", 0))
        count = int(params.get("count", default))
    except ValueError:
        raise VkError(100) from None
    if offset < 0 or not 0 <= count <= 100:
        raise VkError(100)
    return offset, count
