"""Builders of canonical events for the tracking tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from streams.events import CanonicalEvent, make_event_id

PAGE = "vk:-2000001"
OWNER = "-2000001"
MSK = ZoneInfo("Europe/Moscow")
HOUR = 3600.0


def msk(text: str) -> float:
    """'2026-03-03 10:00' Moscow time as a unix timestamp."""
    return datetime.fromisoformat(text).replace(tzinfo=MSK).timestamp()


def comment(
    item_id: str,
    at: float,
    text: str = "Когда починят дорогу?",
    *,
    author: str = "610001",
    thread: str = "501",
    parent: str | None = None,
    reply_to_user: str | None = None,
    action: str = "new",
    page: str = PAGE,
    platform: str = "vk",
) -> CanonicalEvent:
    by_page = author == page.split(":", 1)[1]
    return CanonicalEvent(
        event_id=make_event_id(platform, page, item_id, action, text),
        platform=platform,
        kind="comment",
        action=action,
        page_id=page,
        item_id=item_id,
        thread_id=thread,
        parent_id=parent,
        reply_to_user=reply_to_user,
        author_id=author,
        by_page=by_page,
        text=text,
        created_at=at,
        url=f"https://vk.com/wall{page.split(':', 1)[1]}_{thread}?reply={item_id}",
    )


def page_reply(
    item_id: str, at: float, to: CanonicalEvent | None = None, **kwargs
) -> CanonicalEvent:
    """The page's reply to comment `to` (parent and reply_to_user set as VK does)."""
    if to is not None:
        kwargs.setdefault("parent", to.item_id)
        kwargs.setdefault("reply_to_user", to.author_id)
        kwargs.setdefault("thread", to.thread_id)
        kwargs.setdefault("page", to.page_id)
        kwargs.setdefault("platform", to.platform)
    page = kwargs.get("page", PAGE)
    return comment(item_id, at, kwargs.pop("text", "Здравствуйте! Отвечаем."),
                   author=page.split(":", 1)[1], **kwargs)


def post(item_id: str, at: float, page: str = PAGE, action: str = "new") -> CanonicalEvent:
    """The page's own post `item_id` (its own thread)."""
    owner = page.split(":", 1)[1]
    return replace(comment(item_id, at, "Уважаемые жители!", author=owner, thread=item_id,
                           action=action, page=page),
                   kind="post", event_id=make_event_id("vk", page, item_id, action),
                   url=f"https://vk.com/wall{owner}_{item_id}")


def deleted(event: CanonicalEvent, at: float = 0.0) -> CanonicalEvent:
    """The delete of `event`; VK delete payloads carry no date, hence 0 by default."""
    return replace(event, action="delete", text="", created_at=at,
                   event_id=make_event_id("vk", event.page_id, event.item_id, "delete"))


def edited(event: CanonicalEvent, text: str) -> CanonicalEvent:
    """An edit keeps the original `date` on VK."""
    return replace(event, action="edit", text=text,
                   event_id=make_event_id("vk", event.page_id, event.item_id, "edit", text))


def restored(event: CanonicalEvent) -> CanonicalEvent:
    event_id = make_event_id("vk", event.page_id, event.item_id, "restore", event.text)
    return replace(event, action="restore", event_id=event_id)
