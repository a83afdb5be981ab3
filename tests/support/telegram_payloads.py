"""Builders of Telegram Bot API `Update` objects shaped like the real API sends them.

Used by the normaliser's unit tests, the fake Bot API server (tests/support/fake_telegram.py)
and the connector tests; tests/unit/test_telegram_schema.py validates what they build against the
official Bot API schema, so the fixtures cannot drift from the real shapes.

How a channel with comments looks through the Bot API (what the builders reproduce):

- the channel publishes post P → ``channel_post`` (chat = the channel, ``sender_chat`` = the
  channel, no ``from``);
- Telegram copies it into the linked discussion group as group message F → ``message`` with
  ``is_automatic_forward: true``, ``sender_chat`` = the channel, ``forward_origin`` =
  ``{"type": "channel", "chat": <channel>, "message_id": P}``; F is the comment thread's root;
- a comment is a group ``message`` with ``message_thread_id = F`` and ``reply_to_message`` =
  the replied-to message (F itself for a direct comment) *without its own reply_to_message*;
- the channel answering "as the channel" has ``sender_chat`` = the channel and the
  placeholder user ``Channel_Bot`` in ``from``; an anonymous group admin has ``sender_chat`` =
  the group and ``GroupAnonymousBot`` in ``from``.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import yaml

CHANNEL_ID = -1001700000001
GROUP_ID = -1001700000002
CHANNEL_USERNAME = "adm_syktyvkar_test"
#: placeholder senders the Bot API puts in `from` for messages sent on behalf of a chat
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
GROUP_ANONYMOUS_BOT = {
    "id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot",
}
BASE_DATE = 1795593600  # 2026-11-25 08:00 UTC

_update_ids = itertools.count(900_000_001)


def next_update_id() -> int:
    """A fresh, increasing update id (tests that need exact ids pass their own)."""
    return next(_update_ids)


def _chat(chat_id: int, type_: str, title: str, username: str | None) -> dict[str, Any]:
    chat = {"id": chat_id, "type": type_, "title": title}
    if username:
        chat["username"] = username
    return chat


def channel_chat(channel_id: int = CHANNEL_ID, username: str | None = CHANNEL_USERNAME,
                 title: str = "Администрация города (тест)") -> dict[str, Any]:
    return _chat(channel_id, "channel", title, username)


def group_chat(group_id: int = GROUP_ID, username: str | None = None,
               title: str = "Обсуждение: Администрация города (тест)") -> dict[str, Any]:
    return _chat(group_id, "supergroup", title, username)


def registry_yaml(*other_pages: dict[str, Any], **fields: Any) -> str:
    """A pages.yaml with the test channel first (connector telegram, its discussion group),
    then `other_pages`; `fields` add to the channel's entry."""
    channel = {"page_id": f"telegram:{CHANNEL_ID}", "name": "Администрация города (тест)",
               "municipality": "Тестовый район", "connector": "telegram",
               "telegram_discussion_id": GROUP_ID, **fields}
    return yaml.safe_dump({"pages": [channel, *other_pages]}, allow_unicode=True,
                          sort_keys=False)


def user(user_id: int = 5100001, first_name: str = "Иван", last_name: str | None = "Петров",
         ) -> dict[str, Any]:
    out = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "ru"}
    if last_name:
        out["last_name"] = last_name
    return out


def update(kind: str, message: dict[str, Any], update_id: int | None = None) -> dict[str, Any]:
    """Wrap a Message into an Update of `kind` (message, edited_message, channel_post, ...)."""
    return {"update_id": update_id if update_id is not None else next_update_id(),
            kind: message}


def channel_post(post_id: int, text: str, *, date: int = BASE_DATE,
                 channel: dict[str, Any] | None = None, edit_date: int | None = None,
                 caption: bool = False, update_id: int | None = None) -> dict[str, Any]:
    """`channel_post` (or `edited_channel_post` when `edit_date` is given)."""
    channel = channel or channel_chat()
    msg: dict[str, Any] = {
        "message_id": post_id, "sender_chat": channel, "chat": channel, "date": date,
    }
    if edit_date is not None:
        msg["edit_date"] = edit_date
    if caption:
        msg["photo"] = [_photo()]
        msg["caption"] = text
    else:
        msg["text"] = text
    kind = "channel_post" if edit_date is None else "edited_channel_post"
    return update(kind, msg, update_id)


def automatic_forward(forward_id: int, post_id: int, text: str, *, date: int = BASE_DATE,
                      channel: dict[str, Any] | None = None,
                      group: dict[str, Any] | None = None,
                      update_id: int | None = None) -> dict[str, Any]:
    """The copy of channel post `post_id` Telegram puts in the discussion group as `forward_id`."""
    channel = channel or channel_chat()
    msg = {
        "message_id": forward_id,
        "from": CHANNEL_BOT,
        "sender_chat": channel,
        "chat": group or group_chat(),
        "date": date + 1,
        "forward_origin": {"type": "channel", "chat": channel, "message_id": post_id,
                           "date": date},
        "is_automatic_forward": True,
        "text": text,
    }
    return update("message", msg, update_id)


def comment(message_id: int, text: str, *, root: dict[str, Any], date: int = BASE_DATE + 60,
            author: dict[str, Any] | None = None, sender_chat: dict[str, Any] | None = None,
            reply_to: dict[str, Any] | None = None, edit_date: int | None = None,
            group: dict[str, Any] | None = None, update_id: int | None = None,
            ) -> dict[str, Any]:
    """A message in the comment thread of `root` (the automatic forward's Update or Message).

    `reply_to` (an Update or Message) makes it a nested reply; by default it replies to the
    root, as the "Comment" button in Telegram does. `sender_chat` writes it on behalf of a chat
    (the channel, or the group for an anonymous admin); `edit_date` makes it `edited_message`.
    """
    root_msg = _as_message(root)
    replied = _as_message(reply_to) if reply_to is not None else root_msg
    msg: dict[str, Any] = {
        "message_id": message_id,
        "message_thread_id": root_msg["message_id"],
        "from": author or user(),
        "chat": group or root_msg["chat"],
        "date": date,
        # the Bot API strips the replied-to message's own reply_to_message
        "reply_to_message": {k: v for k, v in replied.items() if k != "reply_to_message"},
        "text": text,
    }
    if sender_chat is not None:
        msg["sender_chat"] = sender_chat
        msg["from"] = GROUP_ANONYMOUS_BOT if sender_chat["type"] != "channel" else CHANNEL_BOT
    if edit_date is not None:
        msg["edit_date"] = edit_date
    return update("message" if edit_date is None else "edited_message", msg, update_id)


def edited(upd: dict[str, Any], text: str, edit_date: int,
           update_id: int | None = None) -> dict[str, Any]:
    """The `edited_message` / `edited_channel_post` Update of a message built above."""
    kind, msg = _kind_and_message(upd)
    msg = copy.deepcopy(msg)
    msg["edit_date"] = edit_date
    msg["caption" if "caption" in msg else "text"] = text
    return update({"message": "edited_message", "channel_post": "edited_channel_post"}[kind],
                  msg, update_id)


def group_chatter(message_id: int, text: str, *, date: int = BASE_DATE + 30,
                  group: dict[str, Any] | None = None,
                  update_id: int | None = None) -> dict[str, Any]:
    """A plain message in the discussion group, outside any post's thread."""
    msg = {"message_id": message_id, "from": user(5100099, "Мария", None),
           "chat": group or group_chat(), "date": date, "text": text}
    return update("message", msg, update_id)


def member_joined(message_id: int, *, group: dict[str, Any] | None = None,
                  update_id: int | None = None) -> dict[str, Any]:
    """A service message: someone joined the discussion group."""
    newcomer = user(5100077, "Пётр", None)
    msg = {"message_id": message_id, "from": newcomer, "chat": group or group_chat(),
           "date": BASE_DATE + 5, "new_chat_members": [newcomer]}
    return update("message", msg, update_id)


def chat_full_info(chat: dict[str, Any], linked_chat_id: int | None = None) -> dict[str, Any]:
    """What getChat returns for `chat` (ChatFullInfo with its required fields)."""
    info = dict(chat)
    info.update(accent_color_id=0, max_reaction_count=11,
                accepted_gift_types={"unlimited_gifts": False, "limited_gifts": False,
                                     "unique_gifts": False, "premium_subscription": False,
                                     "gifts_from_channels": False})
    if linked_chat_id is not None:
        info["linked_chat_id"] = linked_chat_id
    return info


def message_of(upd: dict[str, Any]) -> dict[str, Any]:
    """The Message inside an Update."""
    return _kind_and_message(upd)[1]


def _kind_and_message(upd: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    for kind in ("message", "edited_message", "channel_post", "edited_channel_post"):
        if kind in upd:
            return kind, upd[kind]
    raise ValueError(f"not a message update: {sorted(upd)}")


def _as_message(obj: dict[str, Any]) -> dict[str, Any]:
    return obj if "message_id" in obj else message_of(obj)


def _photo() -> dict[str, Any]:
    return {"file_id": "AgACAgIAAxkBAAIBZ2dUmFAKE", "file_unique_id": "AQADFAKE",
            "width": 1280, "height": 720, "file_size": 120000}
