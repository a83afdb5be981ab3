"""Flags: the items a human should see, and the rules that raise them. Pure functions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from streams.events import CanonicalEvent
from streams.pages import Page
from streams.plain import to_plain_dict


@dataclass(frozen=True)
class FlagPolicy:
    """When a classified comment needs a moderator (values from settings)."""

    toxic_threshold: float = 0.5
    negative_threshold: float = 0.85


@dataclass(frozen=True)
class Flag:
    """One item for the moderators' queue, sent to `dozor.flags` as JSON.

    `flag_id` is deterministic (item + reason), so a flag re-sent after a crash is the same
    flag: consumers upsert by `flag_id` and no moderator sees it twice.
    """

    flag_id: str
    reason: str
    page_id: str
    page_name: str
    municipality: str
    platform: str
    item_id: str
    thread_id: str
    author_id: str
    text: str
    link: str
    created_at: float
    flagged_at: float
    scores: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    #: What the comment is about (a theme key of the model's topic head), or None: no topic
    #: head, no probable theme, or a flag that names no one comment (negative_spike).
    topic: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return to_plain_dict(self)


def flag_id(page_id: str, item_id: str, reason: str) -> str:
    """Deterministic flag identity: one flag per item and reason, ever."""
    return hashlib.sha1(f"{page_id}\x1f{item_id}\x1f{reason}".encode()).hexdigest()[:24]


def comment_flag_reasons(
    event: CanonicalEvent, scores: dict[str, float], policy: FlagPolicy
) -> list[str]:
    """Reasons to show a citizen's comment to a moderator (the page's own never are)."""
    if event.kind != "comment" or event.by_page or event.action == "delete":
        return []
    reasons = []
    if scores.get("toxic", 0.0) >= policy.toxic_threshold:
        reasons.append("toxic")
    if scores.get("negative", 0.0) >= policy.negative_threshold:
        reasons.append("strongly_negative")
    return reasons


def make_flag(
    reason: str,
    event_page: Page,
    *,
    platform: str,
    item_id: str,
    thread_id: str,
    author_id: str,
    text: str,
    link: str,
    created_at: float,
    flagged_at: float,
    scores: dict[str, float] | None = None,
    details: dict[str, Any] | None = None,
    topic: str | None = None,
) -> Flag:
    """Build a flag for an item of a page, with its deterministic id."""
    return Flag(
        flag_id=flag_id(event_page.page_id, item_id, reason),
        reason=reason,
        page_id=event_page.page_id,
        page_name=event_page.name,
        municipality=event_page.municipality,
        platform=platform,
        item_id=item_id,
        thread_id=thread_id,
        author_id=author_id,
        text=text,
        link=link,
        created_at=created_at,
        flagged_at=flagged_at,
        scores=dict(scores or {}),
        details=dict(details or {}),
        topic=topic,
    )


def comment_flags(
    event: CanonicalEvent, scores: dict[str, float], page: Page, policy: FlagPolicy,
    topic: str | None = None,
) -> list[Flag]:
    """Flags for one classified comment (`topic`: the comment's, carried by each flag)."""
    return [
        make_flag(
            reason,
            page,
            platform=event.platform,
            item_id=event.item_id,
            thread_id=event.thread_id,
            author_id=event.author_id,
            text=event.text,
            link=event.url,
            created_at=event.created_at,
            flagged_at=event.created_at,
            scores=scores,
            topic=topic,
        )
        for reason in comment_flag_reasons(event, scores, policy)
    ]


#: What can happen to a flagged item afterwards (contract A, docs/ARCHITECTURE.md).
UPDATE_KINDS = ("answered", "edited", "deleted", "restored", "spike_ended")
#: Flags that name one comment, so the comment's edits, deletes and restores concern them.
COMMENT_FLAG_REASONS = ("toxic", "strongly_negative", "unanswered_question")
#: The comment action → the update kind it makes for a flagged comment.
COMMENT_UPDATE_KINDS = {"edit": "edited", "delete": "deleted", "restore": "restored"}


@dataclass(frozen=True)
class FlagUpdate:
    """Something happened to an already flagged item: one `dozor.flag-updates` record.

    `update_id` is deterministic (flag + kind + the event that caused it), so an update
    re-sent after a crash is the same update and consumers apply it once.
    """

    flag_id: str
    kind: str
    page_id: str
    item_id: str
    at: float
    update_id: str
    link: str | None = None
    text: str | None = None
    scores: dict[str, float] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_plain_dict(self)


def update_id(flag_id_: str, kind: str, event_id: str) -> str:
    """Deterministic update identity: sha1 of the flag, the kind and the causing event."""
    return hashlib.sha1(f"{flag_id_}\x1f{kind}\x1f{event_id}".encode()).hexdigest()


def make_update(
    flag_id_: str, kind: str, page_id: str, item_id: str, at: float, event_id: str, **fields: Any
) -> FlagUpdate:
    """Build an update of flag `flag_id_` caused by the event `event_id`."""
    if kind not in UPDATE_KINDS:
        raise ValueError(f"unknown flag update kind {kind!r}")
    return FlagUpdate(flag_id_, kind, page_id, item_id, at, update_id(flag_id_, kind, event_id),
                      **fields)
