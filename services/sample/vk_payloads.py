"""VK Callback API payloads (API v5.199) shaped as VK posts them.

The one builder of VK payloads in the repository: the demo sample (`generate.py` here), the
two-day scenario (tests/scenarios/two_days/make_events.py), the pipeline fixture
(tests/fixtures/vk/build_pipeline_fixture.py) and the tests' own payloads use it;
tests/unit/test_vk_schema.py validates what it builds against the official schema
(vkcom/vk-api-schema v5.199).

Objects follow the schema's definitions: a post is a ``wall_wallpost``; a comment a
``wall_wall_comment``, which is also the object of an edit and of a restore (the comment as it
is now, with its original ``date``: VK keeps no edit date); a deletion a
``callback_wall_comment_delete``. VK threads are two levels deep: a reply's ``parents_stack``
holds the top-level comment of its thread, a top-level comment carries its (still empty)
``thread``. Posts and comments of one wall share one id sequence on VK; callers choose ids.
"""

from __future__ import annotations

import json

API_VERSION = "5.199"


def envelope(type_: str, owner_id: int, event_id: str, obj: dict) -> dict:
    """A callback: ``{"type", "group_id", "event_id", "v", "object"}`` (no ``secret``)."""
    return {"type": type_, "group_id": -owner_id, "event_id": event_id, "v": API_VERSION,
            "object": obj}


def post(owner_id: int, post_id: int, date: int, text: str, *, created_by: int | None = None,
         is_favorite: bool | None = False) -> dict:
    """A community's own post (``wall_post_new``); ``created_by``: the admin who wrote it
    (left out when None), ``is_favorite`` left out when None."""
    obj = {"inner_type": "wall_wallpost", "id": post_id, "owner_id": owner_id,
           "from_id": owner_id}
    if created_by is not None:
        obj["created_by"] = created_by
    obj.update({
        "date": date,
        "text": text,
        "post_type": "post",
        "marked_as_ads": 0,
        "can_edit": 1,
        "can_delete": 1,
        "comments": {"count": 0, "can_post": 1, "groups_can_post": True},
        "likes": {"count": 0, "user_likes": 0, "can_like": 1, "can_publish": 1},
        "reposts": {"count": 0, "user_reposted": 0},
        "views": {"count": 1},
    })
    if is_favorite is not None:
        obj["is_favorite"] = is_favorite
    return obj


def comment(owner_id: int, comment_id: int, post_id: int, from_id: int, date: int, text: str,
            *, reply_to_comment: int | None = None, reply_to_user: int | None = None,
            thread_root: int | None = None) -> dict:
    """A comment under a post (``wall_reply_new``, ``_edit``, ``_restore``). A reply names the
    comment and user it answers; ``thread_root`` is the top-level comment of its thread
    (default: the comment it answers, itself top-level)."""
    obj = {"id": comment_id, "from_id": from_id, "post_id": post_id, "owner_id": owner_id,
           "parents_stack": [], "date": date, "text": text}
    if reply_to_comment is None:
        obj["thread"] = {"count": 0, "items": [], "can_post": True, "show_reply_button": True,
                         "groups_can_post": True}
    else:
        obj["parents_stack"] = [reply_to_comment if thread_root is None else thread_root]
        obj["reply_to_user"] = reply_to_user
        obj["reply_to_comment"] = reply_to_comment
    return obj


def comment_delete(owner_id: int, comment_id: int, post_id: int, deleted_by: int) -> dict:
    """The object of ``wall_reply_delete``: who deleted which comment (no text, no date)."""
    return {"owner_id": owner_id, "id": comment_id, "user_id": deleted_by, "post_id": post_id}


def dumps(payload: dict) -> str:
    """One JSONL line as the sample and the pipeline fixture store it (compact, UTF-8 text)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
