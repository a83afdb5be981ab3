"""One page's tracking state: open questions, the negative-spike window, posting activity.

`PageState` is plain, synchronous and deterministic: every method takes the event (whose
`created_at` is the only clock for question and spike logic) or an explicit `now`, changes
the state and returns the effects of the change; it never performs I/O. The stream layer
keeps one `PageState` per page, serialised with `to_dict()` into a table value.

Decisions, in short (the module's tests pin each of them):

* Answers: only the page answers (see `streams.tracking.answers.is_answer`); an answer that
  comes after the deadline, or after the question was flagged overdue, is late. A page's
  reply to a deleted comment answers nothing.
* Out of order: page replies that address someone are remembered for `retention_seconds`
  (at most `max_remembered_replies`); a question that arrives later is answered at once
  by the earliest remembered reply that `is_answer` for it, which requires the reply to be
  no earlier than the question.
* Deletes leave a tombstone for `retention_seconds`, so a late `new`/`edit` of a deleted
  comment does not start tracking it; a `restore` lifts it and counts the question again.
* Duplicates are absorbed by item identity: a second `new` of a known item changes
  nothing; an `edit` with the same text and classification changes nothing.
* Overdue is flagged once per question (`overdue_flagged` survives serialisation).
* Negative spike, over the comments of the last `window_seconds` of event time: an episode
  starts when negatives >= `min_negative` and their share >= `min_share`, and ends when
  negatives < `min_negative / 2` or share < `min_share / 2` (hysteresis, so a window that
  hovers at the threshold does not flap). The window is evaluated on citizen comments only,
  so a quiet page's episode ends at its next comment; this keeps spike detection on event
  time alone, whatever clock drives `sweep`. A deleted comment stays in the window (the
  complaint was made; hiding it does not undo the spike); an edit updates its negativity.
* Posts are counted once per post id (the last `max_recent_posts` ids are remembered); a
  deleted post still counts as published.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, replace
from typing import Any, Protocol

from streams.plain import scalars_to_dict
from streams.tracking.answers import is_answer
from streams.tracking.effects import (
    Effect,
    NegativeSpike,
    NegativeSpikeEnded,
    PostSeen,
    QuestionAnswered,
    QuestionDeleted,
    QuestionExpired,
    QuestionOpened,
    QuestionOverdue,
    QuestionWithdrawn,
)
from streams.tracking.questions import TrackedQuestion

STATE_VERSION = 1
DAY = 86400.0
DEFAULT_RETENTION_SECONDS = 7 * DAY
DEFAULT_OPEN_RETENTION_SECONDS = 30 * DAY


class Event(Protocol):
    """The attributes of `streams.events.CanonicalEvent` that tracking reads."""

    platform: str
    kind: str
    action: str
    page_id: str
    item_id: str
    thread_id: str
    parent_id: str | None
    reply_to_user: str | None
    author_id: str
    by_page: bool
    text: str
    created_at: float
    url: str


@dataclass(frozen=True)
class SpikePolicy:
    """When a page's negative comments make a spike: see the module docstring."""

    window_seconds: float = 3600.0
    min_negative: int = 5
    min_share: float = 0.5

    def __post_init__(self) -> None:
        if self.window_seconds <= 0:
            raise ValueError(f"spike window_seconds must be > 0, got {self.window_seconds}")
        if self.min_negative < 1:
            raise ValueError(f"spike min_negative must be >= 1, got {self.min_negative}")
        if not 0 < self.min_share <= 1:
            raise ValueError(f"spike min_share must be in (0, 1], got {self.min_share}")

    def starts(self, negative: int, total: int) -> bool:
        return total > 0 and negative >= self.min_negative and negative / total >= self.min_share

    def ends(self, negative: int, total: int) -> bool:
        share = negative / total if total else 0.0
        return negative < self.min_negative / 2 or share < self.min_share / 2


@dataclass(frozen=True, slots=True)
class RememberedReply:
    """A page reply kept so that a question arriving after it can still be answered."""

    platform: str
    page_id: str
    item_id: str
    thread_id: str
    parent_id: str | None
    reply_to_user: str | None
    created_at: float

    @property
    def by_page(self) -> bool:
        return True


@dataclass(frozen=True)
class PageSnapshot:
    """A page's numbers at one moment, for metrics and `dozor pages`."""

    page_id: str
    open_questions: int
    overdue_questions: int
    oldest_open_asked_at: float | None
    negative_share: float
    negative_count: int
    comments_in_window: int
    last_post_at: float | None
    posts_total: int
    spike_active: bool


@dataclass(slots=True)
class _WindowEntry:
    created_at: float
    negative: bool


class PageState:
    """The tracking state of one page; see the module docstring for the rules."""

    def __init__(
        self,
        page_id: str,
        spike_policy: SpikePolicy | None = None,
        *,
        max_remembered_replies: int = 500,
        max_deleted_items: int = 2000,
        max_recent_posts: int = 200,
    ) -> None:
        self.page_id = page_id
        self.platform = page_id.split(":", 1)[0]
        self.spike_policy = spike_policy or SpikePolicy()
        self.max_remembered_replies = max_remembered_replies
        self.max_deleted_items = max_deleted_items
        self.max_recent_posts = max_recent_posts

        self.questions: dict[str, TrackedQuestion] = {}
        self.window: dict[str, _WindowEntry] = {}
        # The window's entries by time, (created_at, item_id), for pruning without a scan;
        # pairs of entries replaced since are skipped. Negatives counted as entries change.
        self._window_heap: list[tuple[float, str]] = []
        self._window_negative = 0
        self.spike_active = False
        self.spike_started_at: float | None = None
        self.latest_event_at = 0.0
        self.last_post_at: float | None = None
        self.posts_total = 0
        self.recent_post_ids: list[str] = []
        self.remembered_replies: dict[str, RememberedReply] = {}
        self.deleted_items: dict[str, float] = {}

    # --- events ---------------------------------------------------------------------------

    def apply(
        self,
        event: Event,
        is_question: bool = False,
        is_negative: bool = False,
        deadline_at: float = 0.0,
        now: float | None = None,
        topic: str | None = None,
    ) -> list[Effect]:
        """Route any event of this page to `on_post`, `on_delete` or `on_comment`.

        `now` (the stream clock) is only used as the time of a delete, whose payload has none.
        """
        if event.kind == "post":
            return self.on_post(event)
        if event.action == "delete":
            return self.on_delete(event, now)
        return self.on_comment(event, is_question, is_negative, deadline_at, topic)

    def on_comment(
        self, event: Event, is_question: bool, is_negative: bool, deadline_at: float,
        topic: str | None = None,
    ) -> list[Effect]:
        """A comment was written, edited or restored.

        `is_question` / `is_negative` / `topic` are the classifier's verdict on the current text;
        `deadline_at` is the answer deadline for a question asked at `event.created_at`
        (the caller computes it with the page's calendar). Both are ignored for the page's
        own comments, which can only answer questions.
        """
        self._check_page(event)
        if event.kind != "comment":
            raise ValueError(f"on_comment takes comments, got kind {event.kind!r}")
        if event.action == "delete":
            return self.on_delete(event)
        if event.action not in ("new", "edit", "restore"):
            raise ValueError(f"unknown comment action {event.action!r}")
        self.latest_event_at = max(self.latest_event_at, event.created_at)
        if event.action == "restore":
            self.deleted_items.pop(event.item_id, None)
        elif event.item_id in self.deleted_items:
            return []  # a late new/edit of a comment already deleted
        if event.by_page:
            return self._on_page_reply(event)
        effects = self._track_question(event, is_question, deadline_at, topic)
        effects.extend(self._track_spike(event, is_negative))
        return effects

    def on_delete(self, event: Event, now: float | None = None) -> list[Effect]:
        """A comment was deleted: a tracked open question stops counting.

        Delete payloads carry no date on VK; the deletion time is the latest of `now` (the
        stream clock), the event's `created_at` and the latest event time seen on the page: a
        comment is deleted after everything the page showed before it, even when the clock
        that dates the delete lags (a worker that just restarted).
        """
        self._check_page(event)
        if event.kind != "comment":
            return []  # deleted posts still count as published
        deleted_at = max(now or 0.0, event.created_at or 0.0, self.latest_event_at)
        self.deleted_items.pop(event.item_id, None)
        self.deleted_items[event.item_id] = deleted_at
        _trim_oldest(self.deleted_items, self.max_deleted_items)
        question = self.questions.get(event.item_id)
        if question is None or question.deleted:
            return []
        was_open = question.is_open
        question = replace(
            question,
            deleted=True,
            closed_at=question.closed_at if question.closed_at is not None else deleted_at,
        )
        self.questions[question.item_id] = question
        return [QuestionDeleted(question, deleted_at=deleted_at)] if was_open else []

    def on_post(self, event: Event) -> list[Effect]:
        """The page published a post: count it once and remember when."""
        self._check_page(event)
        self.latest_event_at = max(self.latest_event_at, event.created_at)
        if event.action not in ("new", "restore") or event.item_id in self.recent_post_ids:
            return []
        self.recent_post_ids.append(event.item_id)
        del self.recent_post_ids[: -self.max_recent_posts]
        self.posts_total += 1
        self.last_post_at = max(self.last_post_at or event.created_at, event.created_at)
        return [
            PostSeen(
                page_id=self.page_id,
                platform=event.platform,
                item_id=event.item_id,
                posted_at=event.created_at,
                posts_total=self.posts_total,
            )
        ]

    def sweep(
        self,
        now: float,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        open_retention_seconds: float = DEFAULT_OPEN_RETENTION_SECONDS,
    ) -> list[Effect]:
        """Flag open questions whose deadline is at or before `now`, once; prune old state.

        Closed questions, tombstones and remembered replies older than `retention_seconds`
        are dropped; a question still open `open_retention_seconds` after it was asked is
        dropped with a `QuestionExpired` effect.
        """
        effects: list[Effect] = []
        # Called for every event of the page: scan, and sort only what has something due.
        due = [q for q in self.questions.values()
               if q.deadline_at <= now and q.is_open and not q.overdue_flagged]
        for question in sorted(due, key=_question_order):
            question = replace(question, overdue_flagged=True)
            self.questions[question.item_id] = question
            effects.append(QuestionOverdue(question, age_seconds=now - question.asked_at))

        closed_cutoff = now - retention_seconds
        open_cutoff = now - open_retention_seconds
        old = [q for q in self.questions.values()  # a superset; the rules are applied below
               if q.asked_at < open_cutoff
               or (q.closed_at if q.closed_at is not None else q.asked_at) < closed_cutoff]
        for question in sorted(old, key=_question_order):
            if question.is_open:
                if question.asked_at < open_cutoff:
                    del self.questions[question.item_id]
                    effects.append(QuestionExpired(question, age_seconds=now - question.asked_at))
            else:
                closed_at = question.closed_at
                if (closed_at if closed_at is not None else question.asked_at) < closed_cutoff:
                    del self.questions[question.item_id]
        self.deleted_items = {k: t for k, t in self.deleted_items.items() if t >= closed_cutoff}
        self.remembered_replies = {
            k: r for k, r in self.remembered_replies.items() if r.created_at >= closed_cutoff
        }
        return effects

    def snapshot(self, now: float) -> PageSnapshot:
        """Counts at `now`: open and overdue questions, the spike window ending at `now`."""
        open_questions = [q for q in self.questions.values() if q.is_open]
        start = now - self.spike_policy.window_seconds
        in_window = [e for e in self.window.values() if start < e.created_at <= now]
        negative = sum(1 for e in in_window if e.negative)
        return PageSnapshot(
            page_id=self.page_id,
            open_questions=len(open_questions),
            overdue_questions=sum(1 for q in open_questions if q.deadline_at <= now),
            oldest_open_asked_at=min((q.asked_at for q in open_questions), default=None),
            negative_share=negative / len(in_window) if in_window else 0.0,
            negative_count=negative,
            comments_in_window=len(in_window),
            last_post_at=self.last_post_at,
            posts_total=self.posts_total,
            spike_active=self.spike_active,
        )

    def next_change_at(
        self, now: float, open_retention_seconds: float = DEFAULT_OPEN_RETENTION_SECONDS
    ) -> float:
        """The earliest time after `now` at which, with no event in between, `snapshot` or the
        effects of `sweep` may differ from what they are at `now` (`now` itself when a sweep at
        `now` would have effects; math.inf when nothing changes by time alone).

        What changes with time alone: a question falls due at its deadline and is dropped
        (expired) once open for `open_retention_seconds`; a comment enters the spike window's
        counts at its own time and leaves them `window_seconds` later. Pruning of closed
        questions, tombstones and remembered replies changes neither. A clock tick need not
        look at the page before this time (streams/process.py keeps it per page).
        """
        soonest = math.inf
        for q in self.questions.values():
            if not q.is_open:
                continue
            if q.deadline_at > now:
                soonest = min(soonest, q.deadline_at)
            elif not q.overdue_flagged:
                return now  # a sweep at `now` flags it
            # dropped (expired) once asked_at < now - open_retention_seconds
            expires = q.asked_at + open_retention_seconds
            if expires < now:
                return now
            soonest = min(soonest, math.nextafter(expires, math.inf))
        width = self.spike_policy.window_seconds
        for entry in self.window.values():
            at = entry.created_at
            if at > now:
                soonest = min(soonest, at)  # counted from its own time on
            elif at + width > now:
                soonest = min(soonest, at + width)  # and no more once the window has passed it
        return soonest

    # --- serialisation --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict; `PageState.from_dict` restores it exactly."""
        return {
            "version": STATE_VERSION,
            "page_id": self.page_id,
            "questions": [q.to_dict() for q in self.questions.values()],
            "window": [[k, e.created_at, e.negative] for k, e in self.window.items()],
            "spike_active": self.spike_active,
            "spike_started_at": self.spike_started_at,
            "latest_event_at": self.latest_event_at,
            "last_post_at": self.last_post_at,
            "posts_total": self.posts_total,
            "recent_post_ids": list(self.recent_post_ids),
            "remembered_replies": [scalars_to_dict(r) for r in self.remembered_replies.values()],
            "deleted_items": [[k, t] for k, t in self.deleted_items.items()],
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], spike_policy: SpikePolicy | None = None, **limits: int
    ) -> PageState:
        """Rebuild a state from `to_dict()` output; policy and limits are configuration."""
        version = data.get("version")
        if version != STATE_VERSION:
            raise ValueError(f"page state version {version!r} is not {STATE_VERSION}")
        state = cls(data["page_id"], spike_policy, **limits)
        for raw in data["questions"]:
            question = TrackedQuestion.from_dict(raw)
            state.questions[question.item_id] = question
        for k, t, n in data["window"]:
            state._window_put(k, _WindowEntry(float(t), bool(n)))
        state.spike_active = bool(data["spike_active"])
        state.spike_started_at = data["spike_started_at"]
        state.latest_event_at = float(data["latest_event_at"])
        state.last_post_at = data["last_post_at"]
        state.posts_total = int(data["posts_total"])
        state.recent_post_ids = list(data["recent_post_ids"])
        for raw in data["remembered_replies"]:
            reply = RememberedReply(**raw)
            state.remembered_replies[reply.item_id] = reply
        state.deleted_items = {k: float(t) for k, t in data["deleted_items"]}
        return state

    # --- internals ------------------------------------------------------------------------

    def _check_page(self, event: Event) -> None:
        if event.page_id != self.page_id:
            raise ValueError(f"event of page {event.page_id!r} sent to state of {self.page_id!r}")

    def _on_page_reply(self, event: Event) -> list[Effect]:
        if event.parent_id is not None and event.parent_id in self.deleted_items:
            return []
        if event.parent_id is None and event.reply_to_user is None:
            return []  # addresses nobody: a page's own top-level remark
        reply = RememberedReply(
            platform=event.platform,
            page_id=event.page_id,
            item_id=event.item_id,
            thread_id=event.thread_id,
            parent_id=event.parent_id,
            reply_to_user=event.reply_to_user,
            created_at=event.created_at,
        )
        self.remembered_replies.pop(reply.item_id, None)
        self.remembered_replies[reply.item_id] = reply
        _trim_oldest(self.remembered_replies, self.max_remembered_replies)
        effects: list[Effect] = []
        for question in sorted(self.questions.values(), key=_question_order):
            if question.is_open and is_answer(event, question):
                effects.append(self._close_answered(question, reply))
        return effects

    def _close_answered(
        self, question: TrackedQuestion, reply: RememberedReply
    ) -> QuestionAnswered:
        in_time = reply.created_at <= question.deadline_at and not question.overdue_flagged
        question = replace(
            question,
            answered_at=reply.created_at,
            answer_item_id=reply.item_id,
            closed_at=reply.created_at,
        )
        self.questions[question.item_id] = question
        return QuestionAnswered(
            question,
            answered_at=reply.created_at,
            response_seconds=reply.created_at - question.asked_at,
            in_time=in_time,
            answer_item_id=reply.item_id,
        )

    def _answer_from_remembered(self, question: TrackedQuestion) -> list[Effect]:
        replies = sorted(self.remembered_replies.values(), key=lambda r: (r.created_at, r.item_id))
        for reply in replies:
            if is_answer(reply, question):
                return [self._close_answered(question, reply)]
        return []

    def _track_question(
        self, event: Event, is_question: bool, deadline_at: float, topic: str | None = None
    ) -> list[Effect]:
        known = self.questions.get(event.item_id)
        if known is None:
            if not is_question:
                return []
            question = TrackedQuestion(
                page_id=self.page_id,
                platform=event.platform,
                item_id=event.item_id,
                thread_id=event.thread_id,
                author_id=event.author_id,
                text=event.text,
                url=event.url,
                asked_at=event.created_at,
                deadline_at=deadline_at,
                topic=topic,
            )
            self.questions[question.item_id] = question
            effects: list[Effect] = [QuestionOpened(question, reason=event.action)]
            return effects + self._answer_from_remembered(question)

        if event.action == "new":
            return []  # a duplicate, or the original arriving after an edit we applied
        was_open = known.is_open
        updated = replace(
            known,
            text=event.text,
            is_question=is_question,
            deleted=False if event.action == "restore" else known.deleted,
            topic=topic,
        )
        if updated == known:
            return []
        now_open = updated.is_open
        if was_open and not now_open:
            updated = replace(updated, closed_at=self.latest_event_at)
            self.questions[updated.item_id] = updated
            return [QuestionWithdrawn(updated, withdrawn_at=self.latest_event_at)]
        if now_open and not was_open:
            updated = replace(updated, closed_at=None)
            self.questions[updated.item_id] = updated
            effects = [QuestionOpened(updated, reason=event.action)]
            return effects + self._answer_from_remembered(updated)
        self.questions[updated.item_id] = updated
        return []

    def _track_spike(self, event: Event, is_negative: bool) -> list[Effect]:
        policy = self.spike_policy
        window_end = self.latest_event_at
        window_start = window_end - policy.window_seconds
        self._window_prune(window_start)
        if event.created_at > window_start:
            self._window_put(event.item_id, _WindowEntry(event.created_at, is_negative))
        total = len(self.window)
        negative = self._window_negative
        share = negative / total if total else 0.0
        if not self.spike_active and policy.starts(negative, total):
            negative_ids = [k for k, e in self.window.items() if e.negative]
            self.spike_active = True
            self.spike_started_at = window_end
            return [
                NegativeSpike(
                    page_id=self.page_id,
                    platform=event.platform,
                    negative_count=negative,
                    comments_in_window=total,
                    share=share,
                    window_start=window_start,
                    window_end=window_end,
                    item_id=event.item_id,
                    thread_id=event.thread_id,
                    text=event.text,
                    url=event.url,
                    negative_item_ids=tuple(negative_ids),
                )
            ]
        if self.spike_active and policy.ends(negative, total):
            self.spike_active = False
            self.spike_started_at = None
            return [
                NegativeSpikeEnded(
                    page_id=self.page_id,
                    platform=event.platform,
                    negative_count=negative,
                    comments_in_window=total,
                    share=share,
                    ended_at=window_end,
                )
            ]
        return []

    def _window_put(self, item_id: str, entry: _WindowEntry) -> None:
        old = self.window.get(item_id)
        if old is not None:
            self._window_negative -= old.negative
        self.window[item_id] = entry  # a replaced entry keeps its place (to_dict order)
        self._window_negative += entry.negative
        heapq.heappush(self._window_heap, (entry.created_at, item_id))

    def _window_prune(self, window_start: float) -> None:
        """Drop the entries dated at or before `window_start`: O(dropped · log n), no scan."""
        heap = self._window_heap
        while heap and heap[0][0] <= window_start:
            created_at, item_id = heapq.heappop(heap)
            entry = self.window.get(item_id)
            if entry is not None and entry.created_at == created_at:
                del self.window[item_id]
                self._window_negative -= entry.negative


def _question_order(question: TrackedQuestion) -> tuple[float, str]:
    return question.asked_at, question.item_id


def _trim_oldest(mapping: dict[str, Any], limit: int) -> None:
    """Drop the earliest-inserted keys until at most `limit` remain."""
    while len(mapping) > limit:
        del mapping[next(iter(mapping))]
