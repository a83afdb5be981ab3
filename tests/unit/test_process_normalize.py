"""The worker's normalisation step: (platform, raw bytes) → canonical event, None or a dead
letter, for both raw topics (streams.process.Normalizer)."""

from __future__ import annotations

import json

import pytest

from streams.normalize import InvalidPayload
from streams.pages import Page, PageRegistry
from streams.process import Normalizer
from tests.support import telegram_payloads as tg

TELEGRAM_PAGE = Page(f"telegram:{tg.CHANNEL_ID}", "telegram", "Администрация", "Сыктывкар",
                     "администрация", connector="telegram", telegram_discussion_id=tg.GROUP_ID)
VK_PAGE = Page("vk:-2000001", "vk", "Школа", "Вербовский МО", "школа")
NORMALIZE = Normalizer.for_pages(PageRegistry([TELEGRAM_PAGE, VK_PAGE]))


def raw(update: dict) -> bytes:
    return json.dumps(update, ensure_ascii=False).encode()


def test_telegram_posts_and_comments_of_a_registered_channel_become_events():
    post = tg.channel_post(41, "Ремонт дорог начнётся в мае")
    root = tg.automatic_forward(900, 41, "Ремонт дорог начнётся в мае")
    question = tg.comment(901, "А нашу улицу когда?", root=root)
    answer = tg.comment(902, "В июне", root=root, reply_to=question, sender_chat=tg.channel_chat())
    events = [NORMALIZE("telegram", raw(u)) for u in (post, question, answer)]
    assert [(e.kind, e.page_id) for e in events] == [
        ("post", TELEGRAM_PAGE.page_id), ("comment", TELEGRAM_PAGE.page_id),
        ("comment", TELEGRAM_PAGE.page_id)]
    assert not events[1].by_page and events[2].by_page
    assert events[1].thread_id == events[2].thread_id


def test_telegram_updates_dozor_does_not_track_are_ignored_not_dead_lettered():
    root = tg.automatic_forward(900, 41, "Пост")
    for update in (root, tg.member_joined(950), tg.group_chatter(951, "Привет всем"),
                   {"update_id": 7, "my_chat_member": {}}):
        assert NORMALIZE("telegram", raw(update)) is None


def test_an_unknown_channel_is_ignored():
    other = tg.channel_chat(-1009999999999, "someone_else")
    assert NORMALIZE("telegram", raw(tg.channel_post(5, "Чужой пост", channel=other))) is None


@pytest.mark.parametrize(("payload", "reason"), [
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (json.dumps({"channel_post": {"message_id": 1}}).encode(), "missing_field"),
])
def test_malformed_telegram_payloads_raise_invalid_payload_for_the_dead_letter_topic(
        payload, reason):
    with pytest.raises(InvalidPayload) as error:
        NORMALIZE("telegram", payload)
    assert error.value.reason == reason


def test_vk_payloads_go_through_the_vk_normaliser():
    line = json.dumps({
        "type": "wall_reply_new", "group_id": 2000001, "event_id": "e1", "v": "5.199",
        "object": {"id": 11, "from_id": 610001, "date": 1772600000, "text": "Когда?",
                   "post_id": 501, "owner_id": -2000001},
    }).encode()
    event = NORMALIZE("vk", line)
    assert (event.page_id, event.kind, event.item_id) == ("vk:-2000001", "comment", "11")
    with pytest.raises(InvalidPayload):
        NORMALIZE("vk", b"{not json")
    with pytest.raises(ValueError, match="no normaliser"):
        NORMALIZE("ok", b"{}")


@pytest.mark.parametrize("platform", ["vk", "telegram"])
@pytest.mark.parametrize(
    ("raw_bytes", "reason", "says"),
    [
        (b"{not json", "invalid_json", "not valid JSON"),
        (b"\xff\xfe", "invalid_json", "JSON"),
        (b"[1, 2]", "not_an_object", "JSON object"),
    ],
)
def test_both_normalisers_refuse_what_is_no_json_object_alike(platform, raw_bytes, reason, says):
    with pytest.raises(InvalidPayload) as error:
        NORMALIZE(platform, raw_bytes)
    assert error.value.reason == reason and says in str(error.value)
