"""VK Callback API payload → CanonicalEvent.

The payload is the callback envelope exactly as VK posts it (`{type, group_id, event_id, v,
object}`; schema: vk-api-schema `callback/objects.json`). A comment written by the community
itself has `from_id == owner_id` (negative), which is how "the page answered" is detected.
"""

from __future__ import annotations

import json
from typing import Any

from streams.events import CanonicalEvent, make_event_id, text_digest
from streams.normalize.errors import InvalidPayload

COMMENT_ACTIONS = {
    "wall_reply_new": "new",
    "wall_reply_edit": "edit",
    "wall_reply_restore": "restore",
}
POST_TYPES = {"wall_post_new", "wall_repost"}
SUPPORTED_TYPES = frozenset({*COMMENT_ACTIONS, *POST_TYPES, "wall_reply_delete"})


def parse_json(raw: bytes | str) -> dict[str, Any]:
    """Decode one raw message; anything but a JSON object is an InvalidPayload."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidPayload("invalid_json", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidPayload("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    return data


def normalize_vk_bytes(raw: bytes | str) -> CanonicalEvent:
    """Decode and normalise one raw VK callback message."""
    return normalize_vk(parse_json(raw))


def normalize_vk(payload: dict[str, Any]) -> CanonicalEvent:
    """Normalise one VK callback envelope; raises InvalidPayload with the reason."""
    event_type = payload.get("type")
    if not isinstance(event_type, str):
        raise InvalidPayload("missing_field", "envelope has no string field 'type'")
    if event_type not in SUPPORTED_TYPES:
        raise InvalidPayload(
            "unsupported_type",
            f"VK event type {event_type!r} is not handled; Dozor takes "
            f"{', '.join(sorted(SUPPORTED_TYPES))} (check the community's Callback API settings)",
        )
    obj = payload.get("object")
    if not isinstance(obj, dict):
        raise InvalidPayload("missing_field", f"{event_type}: envelope has no object 'object'")
    group_id = payload.get("group_id")
    if group_id is not None and not _is_int(group_id):
        raise InvalidPayload("invalid_field", f"{event_type}: 'group_id' must be an integer")

    if event_type in POST_TYPES:
        return _post(obj, group_id)
    if event_type == "wall_reply_delete":
        return _comment_delete(obj, group_id)
    return _comment(obj, group_id, COMMENT_ACTIONS[event_type])


def _post(obj: dict[str, Any], group_id: int | None) -> CanonicalEvent:
    post_id = _int(obj, "id", "wall_post_new")
    owner_id = _owner(obj, group_id, "wall_post_new")
    from_id = _int(obj, "from_id", "wall_post_new", default=owner_id)
    date = _int(obj, "date", "wall_post_new")
    text = _str(obj, "text", "wall_post_new", default="")
    page_id = f"vk:{owner_id}"
    return CanonicalEvent(
        event_id=make_event_id("vk", owner_id, "post", post_id, "new", date, text_digest(text)),
        platform="vk",
        kind="post",
        action="new",
        page_id=page_id,
        item_id=str(post_id),
        thread_id=str(post_id),
        parent_id=None,
        reply_to_user=None,
        author_id=str(from_id),
        by_page=from_id == owner_id and owner_id < 0,
        text=text,
        created_at=float(date),
        url=f"https://vk.com/wall{owner_id}_{post_id}",
    )


def _comment(obj: dict[str, Any], group_id: int | None, action: str) -> CanonicalEvent:
    where = f"wall_reply_{action}"
    comment_id = _int(obj, "id", where)
    owner_id = _owner(obj, group_id, where)
    post_id = _int(obj, "post_id", where)
    from_id = _int(obj, "from_id", where)
    date = _int(obj, "date", where)
    text = _str(obj, "text", where)
    parent = obj.get("reply_to_comment")
    reply_to_user = obj.get("reply_to_user")
    if parent is not None and not _is_int(parent):
        raise InvalidPayload("invalid_field", f"{where}: 'reply_to_comment' must be an integer")
    if reply_to_user is not None and not _is_int(reply_to_user):
        raise InvalidPayload("invalid_field", f"{where}: 'reply_to_user' must be an integer")
    return CanonicalEvent(
        event_id=make_event_id(
            "vk", owner_id, "comment", comment_id, action, date, text_digest(text)
        ),
        platform="vk",
        kind="comment",
        action=action,
        page_id=f"vk:{owner_id}",
        item_id=str(comment_id),
        thread_id=str(post_id),
        parent_id=str(parent) if parent is not None else None,
        reply_to_user=str(reply_to_user) if reply_to_user is not None else None,
        author_id=str(from_id),
        by_page=from_id == owner_id and owner_id < 0,
        text=text,
        created_at=float(date),
        url=comment_url(owner_id, post_id, comment_id),
    )


def _comment_delete(obj: dict[str, Any], group_id: int | None) -> CanonicalEvent:
    where = "wall_reply_delete"
    comment_id = _int(obj, "id", where)
    owner_id = _owner(obj, group_id, where)
    post_id = _int(obj, "post_id", where)
    deleter = _int(obj, "user_id", where, default=0)
    return CanonicalEvent(
        # A delete carries no date: identity is the comment itself (deleting twice is one fact).
        event_id=make_event_id("vk", owner_id, "comment", comment_id, "delete"),
        platform="vk",
        kind="comment",
        action="delete",
        page_id=f"vk:{owner_id}",
        item_id=str(comment_id),
        thread_id=str(post_id),
        parent_id=None,
        reply_to_user=None,
        author_id=str(deleter),
        by_page=False,
        text="",
        created_at=0.0,
        url=comment_url(owner_id, post_id, comment_id),
    )


def comment_url(owner_id: int, post_id: int, comment_id: int) -> str:
    """Link to a comment as VK shows it."""
    return f"https://vk.com/wall{owner_id}_{post_id}?reply={comment_id}"


def _owner(obj: dict[str, Any], group_id: int | None, where: str) -> int:
    if "owner_id" in obj:
        return _int(obj, "owner_id", where)
    if group_id is None:
        raise InvalidPayload("missing_field", f"{where}: neither object.owner_id nor group_id")
    return -abs(group_id)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_MISSING = object()


def _int(obj: dict[str, Any], name: str, where: str, default: Any = _MISSING) -> int:
    value = obj.get(name, _MISSING)
    if value is _MISSING or value is None:
        if default is _MISSING:
            raise InvalidPayload("missing_field", f"{where}: object has no '{name}'")
        return default
    if not _is_int(value):
        raise InvalidPayload(
            "invalid_field", f"{where}: '{name}' must be an integer, got {value!r:.40}"
        )
    return value


def _str(obj: dict[str, Any], name: str, where: str, default: Any = _MISSING) -> str:
    value = obj.get(name, _MISSING)
    if value is _MISSING or value is None:
        if default is _MISSING:
            raise InvalidPayload("missing_field", f"{where}: object has no '{name}'")
        return default
    if not isinstance(value, str):
        raise InvalidPayload("invalid_field", f"{where}: '{name}' must be a string")
    return value

