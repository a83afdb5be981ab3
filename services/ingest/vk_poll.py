"""`dozor ingest vk-poll`: read pages without Callback API access by polling the VK API.

Per page with ``connector: vk-poll``, one round:

1. ``wall.get`` (the `recent_posts` newest posts, DOZOR_VK_POLL_RECENT_POSTS, default 20; more
   pages if that many are new): posts newer
   than the page's cursor are produced as ``wall_post_new``; the post cursor is committed.
2. For the recent posts whose ``comments.count`` changed since the cursor (and, on a rescan
   round, every change-tracked post, see below): the first top-level page of
   ``wall.getComments`` (``thread_items_count=10``) of all of them in one ``execute`` (up to
   25 calls per request); then post by post the other top-level pages and the threads longer
   than 10 whose count changed (all of them for a tracked post; ``comment_id``), batched
   likewise. Comments with an id above the post's newest known comment id are produced as
   ``wall_reply_new``, then the changes of a tracked post; then that post's cursor is
   committed (post by post, so that a crash re-reads only the posts not yet committed).

Payloads have the Callback API shape (``{type, group_id, event_id, v, object}``) so the
worker's normaliser is unchanged. The envelope ``event_id`` is a sha1 of the item and its
content, so polling an item twice gives the same payload; the canonical event id (content-
based, `streams.events.make_event_id`) is the same whether a comment came by callback or by
polling, so both paths may run for one page.

Cursors (compacted topic, `services.ingest.cursors`) are written only after Kafka
acknowledged the payloads they cover. A crash (SIGKILL) between the two re-produces the
payloads of the post in progress on restart; the worker drops the repeats by event id.

Edits, deletions and restores (change detection). VK has no change feed and no edit date for
comments, so for the recent posts younger than `change_window` (default 72 h, the time in
which a ЦУР still acts on a comment) the cursor keeps a fingerprint per comment id: 8 hex
digits of the sha1 of its text, or ``-`` for a deleted one. Whenever such a post is re-read,
the comments are compared with the fingerprints and produced as

- ``wall_reply_edit`` (the comment as now) for a changed text,
- ``wall_reply_delete`` (``{owner_id, id, user_id, post_id}``; ``user_id`` 0: polling cannot
  know who deleted it) for a comment that disappeared or is listed with ``deleted: true``,
- ``wall_reply_restore`` (the comment as now) for one that came back.

A post is re-read when its ``comments.count`` changed (new, deleted or restored comments move
it) and, for edits, which move nothing, every `rescan_every` rounds (default 10, with the
default 60 s interval an edit is seen within 10 minutes) — the first round after a start is a
rescan, so what changed while the poller was down is seen too. Request cost of a rescan: the
first comment pages of all tracked posts of a page in one ``execute`` (25 calls per
request), then, per post that has them, one ``execute`` for its further top-level pages (100
comments each) and one for its threads longer than 10 replies. A page with up to 25 tracked
posts, none with a long thread or over 100 top-level comments, costs 1 request per rescan,
i.e. +10 % on the one ``wall.get`` per round with the default 10 rounds; each post with long
threads adds 1 (measured with the fake: 10 tracked posts of 30-45 comments, 2 of them with a
15-reply thread: 4 requests per rescan round against 1 per plain round). Tracked posts' long
threads are re-read whenever the post is, so that a vanished reply is a deletion and not a
thread that was simply not read.

Comments on posts older than the `recent_posts` newest are not read: every post that is
followed costs its comment reads, and reading older posts only when their ``comments.count``
moved would still need ``wall.get`` over all of them every round (one request per 100 posts).
A page whose discussions run on older posts needs a larger DOZOR_VK_POLL_RECENT_POSTS.

Bounds: fingerprints are dropped when a post leaves the window (or the recent posts), and at
most `max_fingerprints` per page (default 10 000, ~210 KB of cursor JSON, well under Kafka's
1 MB message) are kept — newest posts first; an older post that does not fit is not tracked.
A comment deleted between two pages of one read can shift the offsets and hide another comment
from that read (the rare price of offset paging): such an incomplete read (fewer comments than
VK counted, in a post or thread read in several pages) reports no deletion, so a comment it
missed is not taken for deleted; the next read decides.
Event ids: an edit or restore envelope is named by the new text, a deletion by the comment
alone, so the same change seen twice (e.g. after a crash before the cursor write) is one event
for the worker.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.ingest.cursors import CursorStore
from services.ingest.metrics import IngestMetrics, serve_metrics
from services.ingest.producer import ProduceFailed, RawProducer
from services.ingest.secrets import Secrets, load_secrets
from services.ingest.vk_api import (
    EXECUTE_MAX_CALLS, RateLimiters, Token, VkApi, VkApiError, VkTransportError,
)
from streams.pages import Page, PageRegistry

log = logging.getLogger("dozor.ingest.vk_poll")
CONNECTOR = "vk-poll"
DEFAULT_RECENT_POSTS = 20  # posts whose comments are followed (DOZOR_VK_POLL_RECENT_POSTS)
MAX_POST_PAGES = 5  # wall.get pages read beyond the recent ones when many posts are new
PAGE_SIZE = 100  # VK's maximum for wall.get and wall.getComments
THREAD_ITEMS = 10  # VK's maximum thread_items_count
CONCURRENT_PAGES = 8
DEFAULT_CHANGE_WINDOW = 72 * 3600.0  # seconds: posts younger than this are change-tracked
DEFAULT_RESCAN_EVERY = 10  # rounds between two re-reads of the tracked posts (for edits)
MAX_FINGERPRINTS = 10_000  # per page: ~21 bytes of cursor JSON each
DELETED = "-"  # the fingerprint of a deleted comment

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


def delete_object(owner_id: int, post_id: int, comment_id: int) -> dict[str, Any]:
    """A `wall_reply_delete` object (callback_wall_comment_delete); the deleter is unknown to
    polling, so `user_id` is 0 (the schema requires the field, the normaliser reads it)."""
    return {"owner_id": owner_id, "id": comment_id, "user_id": 0, "post_id": post_id}


def fingerprint(comment: dict[str, Any]) -> str:
    """A short, stable fingerprint of a comment's state: its text's hash, or DELETED."""
    if comment.get("deleted"):
        return DELETED
    return hashlib.sha1(str(comment.get("text") or "").encode()).hexdigest()[:8]


@dataclass
class Changes:
    """What changed in a post's comments since their fingerprints were taken."""

    edited: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    restored: list[dict[str, Any]] = field(default_factory=list)


def diff_comments(known: dict[str, str], comments: Sequence[dict[str, Any]],
                  complete: bool = True) -> tuple[Changes, dict[str, str]]:
    """Compare a post's comments as read now with their fingerprints: (changes, new prints).

    A comment without a fingerprint (new, or the post was not tracked yet) is only recorded.
    A known comment missing from the read is deleted only when the read was `complete`;
    otherwise its fingerprint is kept and the next read decides.
    """
    changes = Changes()
    prints: dict[str, str] = {}
    for comment in sorted(comments, key=lambda c: c["id"]):
        key = str(comment["id"])
        now = fingerprint(comment)
        before = known.get(key)
        if before is not None and before != now:
            if now == DELETED:
                changes.deleted.append(comment["id"])
            elif before == DELETED:
                changes.restored.append(comment)
            else:
                changes.edited.append(comment)
        prints[key] = now
    for key, before in known.items():
        if key in prints:
            continue
        if before != DELETED and complete:
            changes.deleted.append(int(key))
            prints[key] = DELETED
        else:
            prints[key] = before
    changes.deleted.sort()
    return changes, prints


@dataclass
class PostCursor:
    """What is known of one recent post: its comment count and newest comment id."""

    count: int = 0
    max_id: int = 0
    #: threads longer than THREAD_ITEMS: top-level comment id -> reply count read
    threads: dict[str, int] = field(default_factory=dict)
    #: change-tracked posts only: comment id -> fingerprint (None: the post is not tracked)
    fp: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count, "max_id": self.max_id,
                               "threads": self.threads}
        if self.fp is not None:
            out["fp"] = self.fp
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PostCursor:
        fp = data.get("fp")
        return cls(int(data.get("count", 0)), int(data.get("max_id", 0)),
                   {str(a): int(b) for a, b in (data.get("threads") or {}).items()},
                   {str(a): str(b) for a, b in fp.items()} if isinstance(fp, dict) else None)


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
            posts={k: PostCursor.from_json(v) for k, v in (data.get("posts") or {}).items()
                   if isinstance(v, dict)},
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
                 version: str, *, change_window: float = DEFAULT_CHANGE_WINDOW,
                 rescan_every: int = DEFAULT_RESCAN_EVERY,
                 max_fingerprints: int = MAX_FINGERPRINTS,
                 recent_posts: int = DEFAULT_RECENT_POSTS,
                 clock: Callable[[], float] = time.time) -> None:
        """`change_window` seconds (0: no change detection), `rescan_every` rounds (0: re-read
        only on a changed comment count), `recent_posts`: the newest posts whose comments are
        followed; see the module docstring."""
        if recent_posts < 1:
            raise ValueError("recent_posts must be at least 1")
        self.recent_posts = recent_posts
        self.api = api
        self.send = send
        self.cursors = cursors
        self.metrics = metrics
        self.version = version
        self.change_window = change_window
        self.rescan_every = rescan_every
        self.max_fingerprints = max_fingerprints
        self.clock = clock
        self._rounds: dict[str, int] = {}  # page id -> rounds polled since the start

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
        recent = sorted(posts, key=lambda p: -p["id"])[:self.recent_posts]
        if new_posts:
            await self._send(page.page_id, owner, [("wall_post_new", p) for p in new_posts])
            produced += len(new_posts)
        recent_ids = {str(p["id"]) for p in recent}
        kept = {k: v for k, v in cursor.posts.items() if k in recent_ids}
        for p in recent:
            kept.setdefault(str(p["id"]), PostCursor())
        tracked = self._tracked(recent, kept)
        untracked_now = False
        for post_key, post_cursor in kept.items():
            if post_key not in tracked and post_cursor.fp is not None:
                post_cursor.fp = None  # left the window (or the cap): forget its prints
                untracked_now = True
        newest = max(posts, key=lambda p: p["id"], default=None)
        if newest is not None and newest["id"] > cursor.post_id:
            cursor.post_id, cursor.post_date = newest["id"], int(newest.get("date", 0))
        if new_posts or untracked_now or kept.keys() != cursor.posts.keys():
            cursor.posts = kept
            await self.cursors.commit(key, cursor.to_json())

        round_no = self._rounds.get(page.page_id, 0)
        self._rounds[page.page_id] = round_no + 1
        rescan = self.rescan_every > 0 and round_no % self.rescan_every == 0
        # a rescan skips tracked posts without comments: with none, nothing can be edited
        changed = sorted((p for p in recent
                          if _comment_count(p) != cursor.posts[str(p["id"])].count
                          or (rescan and str(p["id"]) in tracked and _comment_count(p) > 0)),
                         key=lambda p: p["id"])
        # the first page of every changed post in one request, then post by post: read the
        # rest, produce, commit (a crash re-reads only the posts not yet committed)
        firsts = await self._batch(token, [
            self._top_call(owner, post["id"], 0) for post in changed
        ])
        for post, first in zip(changed, firsts):
            post_key = str(post["id"])
            post_cursor = cursor.posts[post_key]
            is_tracked = post_key in tracked
            comments, threads, complete = await self._read_post(
                owner, token, post["id"], first, post_cursor, full=is_tracked)
            fresh = sorted((c for c in comments
                            if c["id"] > post_cursor.max_id and not c.get("deleted")),
                           key=lambda c: c["id"])
            out = [("wall_reply_new", comment_object(owner, post["id"], c)) for c in fresh]
            prints = None
            if is_tracked:
                changes, prints = diff_comments(post_cursor.fp or {}, comments, complete)
                out += [("wall_reply_edit", comment_object(owner, post["id"], c))
                        for c in changes.edited]
                out += [("wall_reply_delete", delete_object(owner, post["id"], cid))
                        for cid in changes.deleted]
                out += [("wall_reply_restore", comment_object(owner, post["id"], c))
                        for c in changes.restored]
            if out:
                await self._send(page.page_id, owner, out)
                produced += len(out)
            cursor.posts[post_key] = PostCursor(
                count=_comment_count(post),
                max_id=max([post_cursor.max_id, *(c["id"] for c in comments)]),
                threads=threads,
                fp=prints,
            )
            await self.cursors.commit(key, cursor.to_json())
        return produced

    def _tracked(self, recent: Sequence[dict], cursors: dict[str, PostCursor]) -> set[str]:
        """Post ids to change-track: younger than the window, newest first, while the page's
        fingerprints (known ones, or the post's comment count) fit `max_fingerprints`."""
        if self.change_window <= 0:
            return set()
        since = self.clock() - self.change_window
        tracked: set[str] = set()
        total = 0
        for post in sorted(recent, key=lambda p: -p["id"]):
            if int(post.get("date", 0)) < since:
                continue
            known = cursors.get(str(post["id"]))
            size = max(_comment_count(post), len(known.fp or {}) if known else 0)
            if total + size > self.max_fingerprints:
                break  # the older posts do not fit either: keep the cap stable
            total += size
            tracked.add(str(post["id"]))
        return tracked

    async def _send(self, page_id: str, owner: int,
                    items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Envelope (type, object) pairs of the wall `owner`, produce them (waiting for the
        acks) and count them by type."""
        await self.send(page_id, [envelope(t, owner, obj, self.version) for t, obj in items])
        counts: dict[str, int] = {}
        for event_type, _ in items:
            counts[event_type] = counts.get(event_type, 0) + 1
        for event_type, count in counts.items():
            self.metrics.produced("vk", event_type, count)

    async def _recent_posts(self, owner: int, token: Token, known: int) -> list[dict]:
        posts: list[dict] = []
        offset = 0
        for _ in range(math.ceil(self.recent_posts / PAGE_SIZE) + MAX_POST_PAGES):
            # the recent posts first (up to 100 a call), then pages of 100 while all are new
            missing = self.recent_posts - offset
            count = min(PAGE_SIZE, missing) if missing > 0 else PAGE_SIZE
            answer = await self.api.method(token, "wall.get", owner_id=owner,
                                           offset=offset, count=count, filter="all")
            items = [i for i in answer.get("items", []) if isinstance(i.get("id"), int)]
            offset += count
            posts.extend(items)
            if not items or offset >= answer.get("count", 0):
                break
            if offset < self.recent_posts:
                continue  # the recent posts are not all read yet
            # a pinned post can be old: look at the unpinned ones to decide whether to go on
            unpinned = [i for i in items if not i.get("is_pinned")]
            if not known or any(i["id"] <= known for i in unpinned):
                break
        unique = {p["id"]: p for p in posts}
        return list(unique.values())

    @staticmethod
    def _top_call(owner: int, post_id: int, offset: int) -> tuple[str, dict]:
        return ("wall.getComments", {
            "owner_id": owner, "post_id": post_id, "count": PAGE_SIZE, "offset": offset,
            "sort": "asc", "thread_items_count": THREAD_ITEMS})

    async def _read_post(self, owner: int, token: Token, post_id: int, first: dict,
                         post_cursor: PostCursor, full: bool = False,
                         ) -> tuple[list[dict], dict[str, int], bool]:
        """Every comment of a post given its first top-level page: (comments, long threads,
        complete).

        The remaining top-level pages in one batch, then the threads longer than
        THREAD_ITEMS in another: every one when `full` (a change-tracked post), else those
        whose reply count changed since the cursor. `complete` is False when a post or thread
        read in several pages returned fewer comments than VK counted (offsets shifted).
        """
        top = list(first.get("items", []))
        level = int(first.get("current_level_count", first.get("count", 0)))
        more = [self._top_call(owner, post_id, off) for off in range(PAGE_SIZE, level, PAGE_SIZE)]
        for answer in await self._batch(token, more):
            top.extend(answer.get("items", []))
        complete = level <= PAGE_SIZE or len({c.get("id") for c in top}) >= level
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
                if full or post_cursor.threads.get(str(comment["id"])) != total:
                    thread_calls.extend(
                        ("wall.getComments", {"owner_id": owner, "post_id": post_id,
                                              "comment_id": comment["id"], "count": PAGE_SIZE,
                                              "offset": off, "sort": "asc"})
                        for off in range(0, total, PAGE_SIZE)
                    )
        read: dict[int, set] = {}  # thread root -> reply ids read by comment_id
        for (_, params), answer in zip(thread_calls, await self._batch(token, thread_calls)):
            items = answer.get("items", [])
            comments.extend(items)
            read.setdefault(params["comment_id"], set()).update(c.get("id") for c in items)
        for root, replies in read.items():
            # a thread read in several pages must hold what VK counted for it
            if threads[str(root)] > PAGE_SIZE and len(replies) < threads[str(root)]:
                complete = False
        unique = {c["id"]: c for c in comments if isinstance(c.get("id"), int)}
        return list(unique.values()), threads, complete

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


def poller_options(settings) -> dict[str, Any]:
    """`PagePoller` options from Settings: change window (hours → seconds), rescan rounds,
    recent posts."""
    return {"change_window": float(settings.vk_change_window_hours) * 3600.0,
            "rescan_every": int(settings.vk_rescan_every),
            "recent_posts": int(settings.vk_poll_recent_posts)}


async def run_poller(settings, registry: PageRegistry, secrets: Secrets, metrics: IngestMetrics,
                     once: bool = False, stop: asyncio.Event | None = None,
                     ) -> list[PageResult]:
    """Poll rounds until `stop` (or one round with `once`); returns the last round's results.

    Change detection and the recent posts follow the settings (`poller_options`)."""
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
            poller = PagePoller(api, send, cursors, metrics, settings.vk_api_version,
                                **poller_options(settings))
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
    """Entry point of `dozor ingest vk-poll [--once]` (change detection and the recent posts:
    DOZOR_VK_CHANGE_WINDOW_HOURS, DOZOR_VK_RESCAN_EVERY, DOZOR_VK_POLL_RECENT_POSTS)."""
    if not settings.kafka_bootstrap:
        print("dozor ingest vk-poll: задайте DOZOR_KAFKA_BOOTSTRAP")
        return 2
    registry = PageRegistry.load(settings.pages_file)
    secrets = load_secrets(settings)
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
