"""`dozor ingest vk-poll`: read pages without Callback API access by polling the VK API.

Per page with ``connector: vk-poll``, one round:

1. ``wall.get`` (the `RECENT_POSTS` newest posts, more pages if that many are new): posts newer
   than the page's cursor are produced as ``wall_post_new``; the post cursor is committed.
2. For the recent posts whose ``comments.count`` changed since the cursor: the first
   top-level page of ``wall.getComments`` (``thread_items_count=10``) of all of them in one
   ``execute`` (up to 25 calls per request); then post by post the other top-level pages and
   the threads longer than 10 whose count changed (``comment_id``), batched likewise. Comments
   with an id above the post's newest known comment id are produced as ``wall_reply_new``;
   then that post's cursor is committed.

Payloads have the Callback API shape (``{type, group_id, event_id, v, object}``) so the
worker's normaliser is unchanged. The envelope ``event_id`` is a sha1 of the item and its
content, so polling an item twice gives the same payload; the canonical event id (content-
based, `streams.events.make_event_id`) is the same whether a comment came by callback or by
polling, so both paths may run for one page.

Cursors (compacted topic, `services.ingest.cursors`) are written only after Kafka
acknowledged the payloads they cover. A crash (SIGKILL) between the two re-produces the
payloads of the post in progress on restart; the worker drops the repeats by event id.

Not seen by polling: comment edits, deletions and restores (VK gives no change feed for them
without reading and hashing every comment each round); the Callback API delivers them.
A comment deleted between two pages of one read can shift the offsets and hide another
comment from that read; it is the rare price of offset paging.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.ingest.cursors import CursorStore
from services.ingest.metrics import IngestMetrics, serve_metrics
from services.ingest.producer import ProduceFailed, RawProducer
from services.ingest.secrets import Secrets
from services.ingest.vk_api import (
    EXECUTE_MAX_CALLS, RateLimiters, Token, VkApi, VkApiError, VkTransportError,
)
from streams.pages import Page, PageRegistry

log = logging.getLogger("dozor.ingest.vk_poll")
CONNECTOR = "vk-poll"
RECENT_POSTS = 20  # posts whose comments are followed; older ones are left to callbacks/never
MAX_POST_PAGES = 5  # wall.get pages read when many posts are new (100 each)
PAGE_SIZE = 100  # VK's maximum for wall.get and wall.getComments
THREAD_ITEMS = 10  # VK's maximum thread_items_count
CONCURRENT_PAGES = 8

Send = Callable[[str, list[bytes]], Awaitable[None]]


# --- pure helpers: payloads and cursors ---------------------------------------------------
def envelope(event_type: str, owner_id: int, obj: dict[str, Any], version: str) -> bytes:
    """A Callback-API-shaped payload with a deterministic event id."""
    digest = hashlib.sha1(
        json.dumps([event_type, owner_id, obj.get("id"), obj.get("date"), obj.get("text")],
                   ensure_ascii=False).encode()
    ).hexdigest()
    payload = {"type": event_type, "group_id": abs(owner_id), "event_id": digest,
               "v": version, "object": obj}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def comment_object(owner_id: int, post_id: int, comment: dict[str, Any]) -> dict[str, Any]:
    """A comment as `wall_reply_new` carries it: owner and post set, thread items dropped."""
    obj = dict(comment)
    obj.setdefault("owner_id", owner_id)
    obj.setdefault("post_id", post_id)
    if isinstance(obj.get("thread"), dict):
        obj["thread"] = {**obj["thread"], "items": []}
    return obj


@dataclass
class PostCursor:
    """What is known of one recent post: its comment count and newest comment id."""

    count: int = 0
    max_id: int = 0
    #: threads longer than THREAD_ITEMS: top-level comment id -> reply count read
    threads: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "max_id": self.max_id, "threads": self.threads}


@dataclass
class PageCursor:
    """A page's polling position: newest post id and date, and the recent posts' cursors."""

    post_id: int = 0
    post_date: int = 0
    posts: dict[str, PostCursor] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> PageCursor:
        if not isinstance(data, dict):
            return cls()
        return cls(
            post_id=int(data.get("post_id", 0)), post_date=int(data.get("post_date", 0)),
            posts={k: PostCursor(int(v.get("count", 0)), int(v.get("max_id", 0)),
                                 {str(a): int(b) for a, b in (v.get("threads") or {}).items()})
                   for k, v in (data.get("posts") or {}).items()},
        )

    def to_json(self) -> dict[str, Any]:
        return {"post_id": self.post_id, "post_date": self.post_date,
                "posts": {k: v.to_json() for k, v in self.posts.items()}}


def cursor_key(page_id: str) -> str:
    return f"{CONNECTOR}:{page_id}"


def owner_of(page: Page) -> int:
    """The wall owner id of a VK page id (`vk:-170001` → -170001)."""
    return int(page.page_id.split(":", 1)[1])


# --- one page -------------------------------------------------------------------------------
@dataclass
class PageResult:
    page_id: str
    produced: int = 0
    error: str | None = None
    code: int | None = None


class PagePoller:
    """Polls pages with one VkApi; `send(page_id, payloads)` produces and awaits the acks."""

    def __init__(self, api: VkApi, send: Send, cursors: CursorStore, metrics: IngestMetrics,
                 version: str) -> None:
        self.api = api
        self.send = send
        self.cursors = cursors
        self.metrics = metrics
        self.version = version

    async def poll(self, page: Page, token: Token) -> PageResult:
        """One round for one page; API errors end this page's round, never the others'."""
        result = PageResult(page.page_id)
        try:
            result.produced = await self._poll(page, token)
        except VkApiError as exc:
            result.error, result.code = exc.reason, exc.code
        except VkTransportError as exc:
            result.error = f"VK недоступен: {exc}"
        except ProduceFailed as exc:
            result.error = f"Kafka недоступна: {exc}"
        if result.error:
            self.metrics.page_failed(page.page_id)
            log.warning("vk-poll: страница %s не прочитана: %s", page.page_id, result.error)
        else:
            self.metrics.page_ok(page.page_id)
        return result

    async def _poll(self, page: Page, token: Token) -> int:
        owner = owner_of(page)
        key = cursor_key(page.page_id)
        cursor = PageCursor.from_json(self.cursors.get(key))
        posts = await self._recent_posts(owner, token, cursor.post_id)
        produced = 0

        new_posts = sorted((p for p in posts if p["id"] > cursor.post_id), key=lambda p: p["id"])
        recent = sorted(posts, key=lambda p: -p["id"])[:RECENT_POSTS]
        if new_posts:
            await self._send(page.page_id, [
                envelope("wall_post_new", owner, p, self.version) for p in new_posts
            ], "wall_post_new")
            produced += len(new_posts)
        recent_ids = {str(p["id"]) for p in recent}
        kept = {k: v for k, v in cursor.posts.items() if k in recent_ids}
        for p in recent:
            kept.setdefault(str(p["id"]), PostCursor())
        newest = max(posts, key=lambda p: p["id"], default=None)
        if newest is not None and newest["id"] > cursor.post_id:
            cursor.post_id, cursor.post_date = newest["id"], int(newest.get("date", 0))
        if new_posts or kept.keys() != cursor.posts.keys():
            cursor.posts = kept
            await self.cursors.commit(key, cursor.to_json())

        changed = sorted((p for p in recent
                          if _comment_count(p) != cursor.posts[str(p["id"])].count),
                         key=lambda p: p["id"])
        # the first page of every changed post in one request, then post by post: read the
        # rest, produce, commit (a crash re-reads only the posts not yet committed)
        firsts = await self._batch(token, [
            self._top_call(owner, post["id"], 0) for post in changed
        ])
        for post, first in zip(changed, firsts):
            post_cursor = cursor.posts[str(post["id"])]
            comments, threads = await self._read_post(owner, token, post["id"], first,
                                                      post_cursor)
            fresh = sorted((c for c in comments if c["id"] > post_cursor.max_id),
                           key=lambda c: c["id"])
            if fresh:
                await self._send(page.page_id, [
                    envelope("wall_reply_new", owner, comment_object(owner, post["id"], c),
                             self.version) for c in fresh
                ], "wall_reply_new")
                produced += len(fresh)
            cursor.posts[str(post["id"])] = PostCursor(
                count=_comment_count(post),
                max_id=max([post_cursor.max_id, *(c["id"] for c in comments)]),
                threads=threads,
            )
            await self.cursors.commit(key, cursor.to_json())
        return produced

    async def _send(self, page_id: str, payloads: list[bytes], event_type: str) -> None:
        await self.send(page_id, payloads)
        self.metrics.produced("vk", event_type, len(payloads))

    async def _recent_posts(self, owner: int, token: Token, known: int) -> list[dict]:
        posts: list[dict] = []
        for page_no in range(MAX_POST_PAGES):
            count = RECENT_POSTS if page_no == 0 else PAGE_SIZE
            answer = await self.api.method(token, "wall.get", owner_id=owner,
                                           offset=len(posts), count=count, filter="all")
            items = [i for i in answer.get("items", []) if isinstance(i.get("id"), int)]
            posts.extend(items)
            # a pinned post can be old: look at the unpinned ones to decide whether to go on
            unpinned = [i for i in items if not i.get("is_pinned")]
            if (not known or not items or len(posts) >= answer.get("count", 0)
                    or any(i["id"] <= known for i in unpinned)):
                break
        unique = {p["id"]: p for p in posts}
        return list(unique.values())

    @staticmethod
    def _top_call(owner: int, post_id: int, offset: int) -> tuple[str, dict]:
        return ("wall.getComments", {
            "owner_id": owner, "post_id": post_id, "count": PAGE_SIZE, "offset": offset,
            "sort": "asc", "thread_items_count": THREAD_ITEMS})

    async def _read_post(self, owner: int, token: Token, post_id: int, first: dict,
                         post_cursor: PostCursor) -> tuple[list[dict], dict[str, int]]:
        """Every comment of a post given its first top-level page: (comments, long threads).

        The remaining top-level pages in one batch, then the threads longer than
        THREAD_ITEMS whose reply count changed since the cursor in another.
        """
        top = list(first.get("items", []))
        level = int(first.get("current_level_count", first.get("count", 0)))
        more = [self._top_call(owner, post_id, off) for off in range(PAGE_SIZE, level, PAGE_SIZE)]
        for answer in await self._batch(token, more):
            top.extend(answer.get("items", []))
        comments: list[dict] = []
        threads: dict[str, int] = {}
        thread_calls: list[tuple[str, dict]] = []
        for comment in top:
            comments.append(comment)
            thread = comment.get("thread") or {}
            items = thread.get("items") or []
            comments.extend(items)
            total = int(thread.get("count", 0))
            if total > len(items):
                threads[str(comment["id"])] = total
                if post_cursor.threads.get(str(comment["id"])) != total:
                    thread_calls.extend(
                        ("wall.getComments", {"owner_id": owner, "post_id": post_id,
                                              "comment_id": comment["id"], "count": PAGE_SIZE,
                                              "offset": off, "sort": "asc"})
                        for off in range(0, total, PAGE_SIZE)
                    )
        for answer in await self._batch(token, thread_calls):
            comments.extend(answer.get("items", []))
        unique = {c["id"]: c for c in comments if isinstance(c.get("id"), int)}
        return list(unique.values()), threads

    async def _batch(self, token: Token, calls: Sequence[tuple[str, dict]]) -> list[Any]:
        """Run calls, 25 per `execute` (a single call goes as itself)."""
        out: list[Any] = []
        for start in range(0, len(calls), EXECUTE_MAX_CALLS):
            chunk = calls[start:start + EXECUTE_MAX_CALLS]
            if len(chunk) == 1:
                name, params = chunk[0]
                out.append(await self.api.method(token, name, **params))
                continue
            for result in await self.api.execute(token, chunk):
                if isinstance(result, VkApiError):
                    raise result
                out.append(result)
        return out


def _comment_count(post: dict) -> int:
    comments = post.get("comments")
    return int(comments.get("count", 0)) if isinstance(comments, dict) else 0


# --- a round over all pages ---------------------------------------------------------------
@dataclass
class PollTarget:
    page: Page
    token: Token | None
    problem: str | None = None


def poll_targets(registry: PageRegistry, secrets: Secrets, default_rate: float) -> list[PollTarget]:
    """The registry's vk-poll pages with their tokens (a page without a token is a problem)."""
    targets = []
    for page in registry:
        if page.connector != "vk-poll":
            continue
        value = secrets.get(page.vk_token_env)
        if value is None:
            name = page.vk_token_env or "(vk_token_env не задан)"
            targets.append(PollTarget(page, None, f"токен {name} не найден"))
            continue
        targets.append(PollTarget(page, Token(page.vk_token_env, value.reveal(),
                                              page.vk_rate or default_rate)))
    return targets


async def poll_round(poller: PagePoller, targets: Sequence[PollTarget]) -> list[PageResult]:
    """One round over every target, CONCURRENT_PAGES at a time (limiters are per token)."""
    semaphore = asyncio.Semaphore(CONCURRENT_PAGES)

    async def one(target: PollTarget) -> PageResult:
        if target.token is None:
            poller.metrics.page_failed(target.page.page_id)
            log.warning("vk-poll: страница %s пропущена: %s", target.page.page_id, target.problem)
            return PageResult(target.page.page_id, error=target.problem)
        async with semaphore:
            return await poller.poll(target.page, target.token)

    return list(await asyncio.gather(*(one(t) for t in targets)))


async def run_poller(settings, registry: PageRegistry, secrets: Secrets, metrics: IngestMetrics,
                     once: bool = False, stop: asyncio.Event | None = None) -> list[PageResult]:
    """Poll rounds until `stop` (or one round with `once`); returns the last round's results."""
    producer = RawProducer(settings.kafka_bootstrap, client_id="dozor-vk-poll")
    await producer.start(retry_for=60.0)
    cursors = CursorStore(settings.kafka_bootstrap, settings.topic_ingest_cursors, producer)
    results: list[PageResult] = []
    try:
        await cursors.load()

        async def send(page_id: str, payloads: list[bytes]) -> None:
            await producer.send_many(settings.topic_raw_vk, [(page_id, p) for p in payloads])

        targets = poll_targets(registry, secrets, settings.vk_requests_per_second)
        async with httpx.AsyncClient(timeout=30.0) as http:
            api = VkApi(http, settings.vk_api_url, settings.vk_api_version, RateLimiters(),
                        metrics, CONNECTOR)
            poller = PagePoller(api, send, cursors, metrics, settings.vk_api_version)
            while True:
                results = await poll_round(poller, targets)
                failed = sum(1 for r in results if r.error)
                log.info("vk-poll: круг окончен, страниц %d, с ошибкой %d, событий %d",
                         len(results), failed, sum(r.produced for r in results))
                if once or (stop is not None and stop.is_set()):
                    break
                try:
                    await asyncio.wait_for(
                        (stop or asyncio.Event()).wait(), settings.vk_poll_interval_seconds
                    )
                    break
                except TimeoutError:
                    pass
    finally:
        await producer.stop()
    return results


def run(settings, args) -> int:
    """Entry point of `dozor ingest vk-poll [--once]`."""
    if not settings.kafka_bootstrap:
        print("dozor ingest vk-poll: задайте DOZOR_KAFKA_BOOTSTRAP")
        return 2
    registry = PageRegistry.load(settings.pages_file)
    secrets = Secrets.load(settings.secrets_file, os.environ)
    metrics = IngestMetrics()
    once = bool(getattr(args, "once", False))
    if not once:
        serve_metrics(metrics, settings.metrics_host, settings.ingest_metrics_port)

    async def main() -> list[PageResult]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run_poller(settings, registry, secrets, metrics, once=once, stop=stop)

    results = asyncio.run(main())
    if once:
        for r in results:
            status = "ошибка: " + r.error if r.error else f"событий: {r.produced}"
            print(f"{r.page_id}\t{status}")
        return 1 if any(r.error for r in results) else 0
    return 0
