"""VK Callback payload → canonical event, and every way a payload can be refused."""

from __future__ import annotations

import json

import pytest

from streams.normalize import InvalidPayload
from streams.normalize.vk import normalize_vk, normalize_vk_bytes


def reply(**overrides) -> dict:
    obj = {
        "id": 15, "from_id": 610001, "owner_id": -2200001, "post_id": 3, "date": 1764054000,
        "text": "Когда починят дорогу?", "parents_stack": [], "thread": {"count": 0},
    }
    obj.update(overrides)
    return {"type": "wall_reply_new", "group_id": 2200001, "event_id": "e1", "v": "5.199",
            "object": obj}


def test_citizen_comment():
    event = normalize_vk(reply())
    assert (event.platform, event.kind, event.action) == ("vk", "comment", "new")
    assert event.page_id == "vk:-2200001"
    assert (event.item_id, event.thread_id, event.parent_id) == ("15", "3", None)
    assert event.author_id == "610001" and not event.by_page
    assert event.created_at == 1764054000.0
    assert event.url == "https://vk.com/wall-2200001_3?reply=15"


def test_page_reply_is_by_page_and_keeps_its_parent():
    event = normalize_vk(reply(id=16, from_id=-2200001, reply_to_comment=15,
                               reply_to_user=610001))
    assert event.by_page
    assert (event.parent_id, event.reply_to_user) == ("15", "610001")


def test_a_user_whose_id_equals_the_group_id_is_not_the_page():
    assert not normalize_vk(reply(from_id=2200001)).by_page


def test_edit_restore_delete_and_post():
    assert normalize_vk({**reply(), "type": "wall_reply_edit"}).action == "edit"
    assert normalize_vk({**reply(), "type": "wall_reply_restore"}).action == "restore"
    deleted = normalize_vk({"type": "wall_reply_delete", "group_id": 2200001, "event_id": "x",
                            "v": "5.199",
                            "object": {"owner_id": -2200001, "id": 15, "user_id": 1, "post_id": 3}})
    assert (deleted.action, deleted.item_id, deleted.text) == ("delete", "15", "")
    post = normalize_vk({"type": "wall_post_new", "group_id": 2200001, "event_id": "p",
                         "v": "5.199", "object": {"id": 3, "owner_id": -2200001,
                                                  "from_id": -2200001, "date": 1, "text": "Пост"}})
    assert (post.kind, post.by_page, post.url) == ("post", True, "https://vk.com/wall-2200001_3")


def test_event_id_is_deterministic_and_content_sensitive():
    first = normalize_vk(reply())
    again = normalize_vk(json.loads(json.dumps({**reply(), "event_id": "another-delivery"})))
    edited = normalize_vk({**reply(text="Когда починят дорогу на Советской?"),
                           "type": "wall_reply_edit"})
    assert first.event_id == again.event_id
    assert edited.event_id != first.event_id


def test_owner_falls_back_to_group_id():
    payload = reply()
    del payload["object"]["owner_id"]
    assert normalize_vk(payload).page_id == "vk:-2200001"


@pytest.mark.parametrize(
    ("raw", "reason", "says"),
    [
        (b'{"type": "group_join", "group_id": 1, "object": {}}', "unsupported_type", "group_join"),
        (b'{"group_id": 1}', "missing_field", "'type'"),
        (b'{"type": "wall_reply_new", "group_id": 1}', "missing_field", "'object'"),
    ],
)
def test_refused_payloads_say_why(raw, reason, says):
    with pytest.raises(InvalidPayload) as error:
        normalize_vk_bytes(raw)
    assert error.value.reason == reason
    assert says in str(error.value)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [("text", None, "missing_field"), ("date", None, "missing_field"),
     ("date", "yesterday", "invalid_field"), ("id", True, "invalid_field"),
     ("text", 5, "invalid_field"), ("reply_to_comment", "15", "invalid_field")],
)
def test_bad_fields(field, value, reason):
    payload = reply()
    if value is None:
        del payload["object"][field]
    else:
        payload["object"][field] = value
    with pytest.raises(InvalidPayload) as error:
        normalize_vk(payload)
    assert error.value.reason == reason and field in error.value.detail


def test_dead_letter_limit_counts_consecutive_invalid_payloads_only():
    from streams.dead_letter import DeadLetterLimit, DeadLetterLimitExceeded

    limit = DeadLetterLimit(3)
    error = InvalidPayload("invalid_json", "x")
    limit.invalid(error)
    limit.invalid(error)
    limit.valid()
    limit.invalid(error)
    limit.invalid(error)
    with pytest.raises(DeadLetterLimitExceeded, match="DOZOR_DEAD_LETTER_MAX_CONSECUTIVE"):
        limit.invalid(error)
    unlimited = DeadLetterLimit(0)
    for _ in range(10_000):
        unlimited.invalid(error)
