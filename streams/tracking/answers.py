"""Deciding whether a page's reply answers a tracked question."""

from __future__ import annotations

from typing import Protocol

from streams.tracking.questions import TrackedQuestion


class Reply(Protocol):
    """What `is_answer` reads of a reply: a `CanonicalEvent` or a remembered reply."""

    platform: str
    page_id: str
    thread_id: str
    parent_id: str | None
    reply_to_user: str | None
    by_page: bool
    created_at: float


def is_answer(reply: Reply, question: TrackedQuestion) -> bool:
    """Whether `reply` is the page's answer to `question`.

    Only the page itself answers (citizens helping each other do not count). The reply must
    be on the same page and thread, no earlier than the question, and address it: on VK
    either a reply to the question comment or, anywhere in the same thread, a reply to the
    question's author; on Telegram a reply to the question message. Whether the question is
    still open (not deleted, not already answered) is the caller's concern.
    """
    if not reply.by_page:
        return False
    if reply.page_id != question.page_id or reply.thread_id != question.thread_id:
        return False
    if reply.created_at < question.asked_at:
        return False
    if reply.parent_id is not None and reply.parent_id == question.item_id:
        return True
    if reply.platform == "vk":
        return reply.reply_to_user is not None and reply.reply_to_user == question.author_id
    return False
