"""Telegram Bot API `Update` → CanonicalEvent.

The payload is one `Update` object exactly as `getUpdates` returned it (schema: the Bot API
types `Update`, `Message`, `Chat`, `MessageOrigin` in ``shared/data/telegram-bot-api``).
A Telegram page is a channel; its comments live in the channel's linked discussion group.

What becomes what:

- ``channel_post`` / ``edited_channel_post`` in a known channel → a post (``new`` / ``edit``),
  ``page_id = telegram:<channel chat id>``, ``item_id = thread_id = <post message_id>``,
  ``by_page`` always (only the channel's admins publish in a channel).
- ``message`` / ``edited_message`` in a known discussion group → a comment (``new`` / ``edit``)
  of the channel the group belongs to, when the message is part of a post's comment thread:
  it replies to the automatic forward of the post (``reply_to_message.is_automatic_forward``)
  or, deeper in the thread, carries the thread's ``message_thread_id``. Plain chat in the
  group (no thread), a reply to a plain message, forum topic messages and service messages
  (member joined, pinned, ...) are not comments → None. Known limit: in a supergroup without
  topics *any* reply chain is a thread (``message_thread_id`` = the chain's first message),
  and a reply two levels down a chain that started with a plain group message looks exactly
  like a nested comment (the root is not in the message), so it is taken as a comment of
  thread ``discussion-<first message id>`` — still a message in the page's own group.
- The automatic forward itself (``is_automatic_forward``: Telegram copies every channel post
  into the group to open its comment thread) is not a comment → None; the post is already
  known from ``channel_post``.
- Anything else (other update types, chats that are not a known channel or discussion group)
  → None. Malformed input (not JSON, missing ``update_id`` / ``message_id`` / ``chat`` /
  ``date``, wrong types) → InvalidPayload with the reason, for the dead-letter topic.

**thread_id of comments.** Comments live in the group and have group message ids; the post
has a channel message id. A direct reply to the post's automatic forward names the channel
post (``reply_to_message.forward_origin.message_id``), but a *nested* reply (a reply to a
comment, e.g. the channel answering a citizen) does not: Telegram strips the replied-to
message's own ``reply_to_message``, and only ``message_thread_id`` (the group message id of
the automatic forward, the thread root) is left. A pure normaliser therefore cannot map every
comment to the channel post id. So every comment of a thread, direct or nested, citizen's or
the page's, gets the same ``thread_id = "discussion-<thread root id>"`` — which is what answer
tracking needs (a page's reply answers a question in the same thread). The ``discussion-``
prefix keeps the group's id space apart from channel post ids: a thread root id can equal an
unrelated post id (both are small sequential numbers), and a plain number would join the
comments to the wrong post. Known limit: comments do not join their post by ``thread_id``
(the post's own ``thread_id`` is its channel id); the automatic forward carries both ids
(``message_id`` and ``forward_origin.message_id``) if a stateful stage ever needs the map.

**parent_id** is the replied-to group message id when that message is not the thread root
(``reply_to_user`` is then its author); a direct comment on the post has neither, as on VK.

**by_page**: the channel's own replies come with ``sender_chat`` = the channel (an admin
writing "as the channel") or the discussion group itself (an anonymous group admin); for
those ``from`` is only a placeholder user, so ``author_id`` is the sender chat's id.

**url**: ``https://t.me/<channel username>/<post id>?comment=<comment id>`` (``t.me/c/<internal
channel id>/...`` for channels without a username) when the channel post id is in the message;
for nested replies, where it is not, the group's own link
``https://t.me/<group username | c/<internal group id>>/<comment id>?thread=<thread root id>``.

**Deletions**: the Bot API sends no update when a message is deleted in a channel or an
ordinary (non-business) group, so Telegram pages produce no ``delete`` events: a deleted
question stays open until answered or overdue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from streams.events import CanonicalEvent, make_event_id, text_digest
from streams.normalize.errors import InvalidPayload
from streams.normalize.vk import parse_json

POST_UPDATES = {"channel_post": "new", "edited_channel_post": "edit"}
GROUP_UPDATES = {"message": "new", "edited_message": "edit"}
#: The update types the connector asks for (getUpdates `allowed_updates`).
HANDLED_UPDATES = (*GROUP_UPDATES, *POST_UPDATES)

#: Message fields that make a message a service message (not something a person wrote).
#: Taken from the Bot API `Message` type: the fields documented as "Service message: ..."
#: plus the few documented without that prefix; tests/unit/test_telegram_schema.py checks this
#: list against the schema so a new Bot API version cannot slip a service field past it.
SERVICE_FIELDS = frozenset({
    "new_chat_members", "left_chat_member", "new_chat_title", "new_chat_photo",
    "delete_chat_photo", "group_chat_created", "supergroup_chat_created",
    "channel_chat_created", "message_auto_delete_timer_changed", "migrate_to_chat_id",
    "migrate_from_chat_id", "pinned_message", "successful_payment", "refunded_payment",
    "users_shared", "chat_shared", "gift", "unique_gift", "gift_upgrade_sent",
    "connected_website", "write_access_allowed", "proximity_alert_triggered", "boost_added",
    "chat_background_set", "checklist_tasks_done", "checklist_tasks_added",
    "direct_message_price_changed", "forum_topic_created", "forum_topic_edited",
    "forum_topic_closed", "forum_topic_reopened", "general_forum_topic_hidden",
    "general_forum_topic_unhidden", "giveaway_created", "giveaway_completed",
    "giveaway_winners", "managed_bot_created", "paid_message_price_changed",
    "poll_option_added", "poll_option_deleted", "suggested_post_approved",
    "suggested_post_approval_failed", "suggested_post_declined", "suggested_post_paid",
    "suggested_post_refunded", "video_chat_scheduled", "video_chat_started",
    "video_chat_ended", "video_chat_participants_invited", "web_app_data",
    "chat_owner_left", "chat_owner_changed",
})

THREAD_PREFIX = "discussion-"


class TelegramNormalizer:
    """Normalises Bot API updates of the registered Telegram pages (contract B).

    `discussions` maps each discussion group chat id to its channel chat id
    (`PageRegistry.telegram_discussions()`); `channels` adds channels without a discussion
    group (their posts are still events). Pure: no I/O, no state between calls.
    """

    def __init__(self, discussions: Mapping[int, int], channels: Iterable[int] = ()) -> None:
        self.discussions = {int(group): int(channel) for group, channel in discussions.items()}
        self.channels = frozenset(self.discussions.values()) | {int(c) for c in channels}

    def normalize_bytes(self, raw: bytes | str) -> CanonicalEvent | None:
        """Decode and normalise one raw Update (the bytes the connector produced)."""
        return self.normalize(parse_json(raw))

    def normalize(self, update: dict[str, Any]) -> CanonicalEvent | None:
        """Normalise one Update; None when Dozor does not track it, InvalidPayload if broken."""
        if not isinstance(update, dict):
            raise InvalidPayload("not_an_object", "an Update must be a JSON object")
        _int(update, "update_id", "update")
        for kind, action in POST_UPDATES.items():
            if kind in update:
                return self._post(_message(update, kind), kind, action)
        for kind, action in GROUP_UPDATES.items():
            if kind in update:
                return self._comment(_message(update, kind), kind, action)
        return None  # another update type (callback_query, my_chat_member, ...)

    # --- posts ----------------------------------------------------------------------------

    def _post(self, msg: dict[str, Any], where: str, action: str) -> CanonicalEvent | None:
        chat = _chat(msg, "chat", where)
        channel_id = chat["id"]
        if channel_id not in self.channels or _is_service(msg):
            return None
        post_id = msg["message_id"]
        created_at = _created_at(msg, action, where)
        text = _text(msg, where)
        sender = _optional_chat(msg, "sender_chat", where)
        author_id = sender["id"] if sender is not None else channel_id
        return CanonicalEvent(
            event_id=make_event_id(
                "telegram", channel_id, "post", post_id, action, created_at, text_digest(text)
            ),
            platform="telegram",
            kind="post",
            action=action,
            page_id=page_id_of(channel_id),
            item_id=str(post_id),
            thread_id=str(post_id),
            parent_id=None,
            reply_to_user=None,
            author_id=str(author_id),
            by_page=True,
            text=text,
            created_at=float(created_at),
            url=_message_link(chat.get("username"), channel_id, post_id),
        )

    # --- comments -------------------------------------------------------------------------

    def _comment(self, msg: dict[str, Any], where: str, action: str) -> CanonicalEvent | None:
        chat = _chat(msg, "chat", where)
        group_id = chat["id"]
        channel_id = self.discussions.get(group_id)
        if channel_id is None or msg.get("is_automatic_forward") is True or _is_service(msg):
            return None
        comment_id = msg["message_id"]
        thread_id = _optional_int(msg, "message_thread_id", where)
        if msg.get("is_topic_message") is True:
            return None  # a forum topic of the group, not a post's comment thread
        parent = msg.get("reply_to_message")
        if parent is not None and not isinstance(parent, dict):
            raise InvalidPayload("invalid_field", f"{where}: 'reply_to_message' must be an object")
        parent_is_root = parent is not None and parent.get("is_automatic_forward") is True
        if parent is not None:
            _int(parent, "message_id", f"{where}.reply_to_message")
        if thread_id is None:
            if not parent_is_root:
                return None  # ordinary group chat, not a reply in a post's thread
            thread_id = parent["message_id"]
        elif parent is not None and parent["message_id"] == thread_id and not parent_is_root:
            # A reply to the root of a plain reply chain: in a supergroup without topics any
            # reply opens a "thread" whose message_thread_id is the replied-to message.
            return None

        parent_id = reply_to_user = None
        if parent is not None and parent["message_id"] != thread_id:
            parent_id = str(parent["message_id"])
            replied_author = _author(parent, f"{where}.reply_to_message")
            reply_to_user = str(replied_author) if replied_author is not None else None

        sender = _optional_chat(msg, "sender_chat", where)
        by_page = sender is not None and sender["id"] in (channel_id, group_id)
        author_id = _author(msg, where)
        if author_id is None:
            raise InvalidPayload("missing_field", f"{where}: message has neither 'from' nor "
                                 "'sender_chat'")
        created_at = _created_at(msg, action, where)
        text = _text(msg, where)
        url = self._comment_url(msg, chat, parent if parent_is_root else None, channel_id,
                                thread_id, comment_id, where)
        return CanonicalEvent(
            event_id=make_event_id(
                "telegram", channel_id, "comment", comment_id, action, created_at, text_digest(text)
            ),
            platform="telegram",
            kind="comment",
            action=action,
            page_id=page_id_of(channel_id),
            item_id=str(comment_id),
            thread_id=f"{THREAD_PREFIX}{thread_id}",
            parent_id=parent_id,
            reply_to_user=reply_to_user,
            author_id=str(author_id),
            by_page=by_page,
            text=text,
            created_at=float(created_at),
            url=url,
        )

    def _comment_url(
        self, msg: dict[str, Any], chat: dict[str, Any], root: dict[str, Any] | None,
        channel_id: int, thread_id: int, comment_id: int, where: str,
    ) -> str:
        """The post's comment link when the post id is known, else the group's thread link."""
        origin = root.get("forward_origin") if root is not None else None
        if isinstance(origin, dict) and origin.get("type") == "channel":
            post_id = _optional_int(origin, "message_id", f"{where}.forward_origin")
            origin_chat = origin.get("chat") if isinstance(origin.get("chat"), dict) else {}
            if post_id is not None and origin_chat.get("id", channel_id) == channel_id:
                base = _message_link(origin_chat.get("username"), channel_id, post_id)
                return f"{base}?comment={comment_id}"
        base = _message_link(chat.get("username"), chat["id"], comment_id)
        return f"{base}?thread={thread_id}"


def page_id_of(channel_id: int) -> str:
    """The Dozor page id of a Telegram channel."""
    return f"telegram:{channel_id}"


def internal_chat_id(chat_id: int) -> int:
    """The id `t.me/c/<id>/...` links use: a supergroup/channel id without its -100 prefix."""
    if chat_id <= -1_000_000_000_000:
        return -chat_id - 1_000_000_000_000
    return abs(chat_id)


def _message_link(username: object, chat_id: int, message_id: int) -> str:
    if isinstance(username, str) and username:
        return f"https://t.me/{username}/{message_id}"
    return f"https://t.me/c/{internal_chat_id(chat_id)}/{message_id}"


# --- field access ---------------------------------------------------------------------------


def _message(update: dict[str, Any], kind: str) -> dict[str, Any]:
    msg = update[kind]
    if not isinstance(msg, dict):
        raise InvalidPayload("invalid_field", f"{kind}: must be a Message object")
    _int(msg, "message_id", kind)
    _int(msg, "date", kind)
    if "chat" not in msg or msg["chat"] is None:
        raise InvalidPayload("missing_field", f"{kind}: message has no 'chat'")
    return msg


def _chat(msg: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    chat = _optional_chat(msg, name, where)
    if chat is None:
        raise InvalidPayload("missing_field", f"{where}: message has no '{name}'")
    return chat


def _optional_chat(msg: dict[str, Any], name: str, where: str) -> dict[str, Any] | None:
    chat = msg.get(name)
    if chat is None:
        return None
    if not isinstance(chat, dict):
        raise InvalidPayload("invalid_field", f"{where}: '{name}' must be a Chat object")
    _int(chat, "id", f"{where}.{name}")
    return chat


def _author(msg: dict[str, Any], where: str) -> int | None:
    """Who wrote it: the sender chat (channel, anonymous admin) if any, else the user."""
    sender = _optional_chat(msg, "sender_chat", where)
    if sender is not None:
        return sender["id"]
    user = msg.get("from")
    if user is None:
        return None
    if not isinstance(user, dict):
        raise InvalidPayload("invalid_field", f"{where}: 'from' must be a User object")
    return _int(user, "id", f"{where}.from")


def _created_at(msg: dict[str, Any], action: str, where: str) -> int:
    if action == "edit":
        edited = _optional_int(msg, "edit_date", where)
        if edited is not None:
            return edited
    return msg["date"]


def _text(msg: dict[str, Any], where: str) -> str:
    for name in ("text", "caption"):
        value = msg.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidPayload("invalid_field", f"{where}: '{name}' must be a string")
        return value
    return ""  # a sticker, photo without caption, ...: still a message, with no text


def _is_service(msg: dict[str, Any]) -> bool:
    return any(msg.get(name) is not None for name in SERVICE_FIELDS)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(obj: dict[str, Any], name: str, where: str) -> int:
    value = obj.get(name)
    if value is None:
        raise InvalidPayload("missing_field", f"{where}: object has no '{name}'")
    if not _is_int(value):
        raise InvalidPayload(
            "invalid_field", f"{where}: '{name}' must be an integer, got {value!r:.40}"
        )
    return value


def _optional_int(obj: dict[str, Any], name: str, where: str) -> int | None:
    if obj.get(name) is None:
        return None
    return _int(obj, name, where)

