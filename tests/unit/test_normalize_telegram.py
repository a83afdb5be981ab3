"""Telegram Bot API Update → canonical event: posts, comments, the page's replies, refusals."""

from __future__ import annotations

import json

import pytest

from streams.normalize import InvalidPayload
from streams.normalize.telegram import TelegramNormalizer, internal_chat_id
from tests.support import telegram_payloads as tg
from tests.support.payloads import REMOVE, altered

POST_ID, FORWARD_ID = 42, 310
NORMALIZER = TelegramNormalizer({tg.GROUP_ID: tg.CHANNEL_ID})
PAGE = f"telegram:{tg.CHANNEL_ID}"
THREAD = f"discussion-{FORWARD_ID}"


def forward(**kw):
    return tg.automatic_forward(FORWARD_ID, POST_ID, "Ремонт дороги на Советской", **kw)


def question(message_id=311, **kw):
    return tg.comment(message_id, "Когда закончат ремонт?", root=forward(), **kw)


def test_channel_post():
    event = NORMALIZER.normalize(tg.channel_post(POST_ID, "Ремонт дороги на Советской",
                                                 date=tg.BASE_DATE))
    assert (event.platform, event.kind, event.action) == ("telegram", "post", "new")
    assert event.page_id == PAGE
    assert (event.item_id, event.thread_id, event.parent_id) == ("42", "42", None)
    assert event.by_page and event.author_id == str(tg.CHANNEL_ID)
    assert event.text == "Ремонт дороги на Советской"
    assert event.created_at == float(tg.BASE_DATE)
    assert event.url == f"https://t.me/{tg.CHANNEL_USERNAME}/42"


def test_edited_post_uses_edit_date_and_a_new_event_id():
    post = tg.channel_post(POST_ID, "Ремонт", date=tg.BASE_DATE)
    edit = tg.edited(post, "Ремонт дороги перенесён", edit_date=tg.BASE_DATE + 600)
    first, changed = NORMALIZER.normalize(post), NORMALIZER.normalize(edit)
    assert (changed.kind, changed.action, changed.item_id) == ("post", "edit", "42")
    assert changed.created_at == float(tg.BASE_DATE + 600)
    assert changed.text == "Ремонт дороги перенесён"
    assert changed.event_id != first.event_id


def test_photo_post_text_is_its_caption_and_private_channel_link_uses_internal_id():
    channel = tg.channel_chat(username=None)
    event = NORMALIZER.normalize(tg.channel_post(7, "Фото с субботника", channel=channel,
                                                 caption=True))
    assert event.text == "Фото с субботника"
    assert event.url == "https://t.me/c/1700000001/7"


def test_comment_on_a_post():
    event = NORMALIZER.normalize(question(date=tg.BASE_DATE + 120))
    assert (event.platform, event.kind, event.action) == ("telegram", "comment", "new")
    assert event.page_id == PAGE
    assert (event.item_id, event.thread_id) == ("311", THREAD)
    assert (event.parent_id, event.reply_to_user) == (None, None)  # replies to the post itself
    assert event.author_id == "5100001" and not event.by_page
    assert event.text == "Когда закончат ремонт?"
    assert event.created_at == float(tg.BASE_DATE + 120)
    assert event.url == f"https://t.me/{tg.CHANNEL_USERNAME}/42?comment=311"


def test_comment_url_of_a_channel_without_username():
    channel = tg.channel_chat(username=None)
    root = tg.automatic_forward(FORWARD_ID, POST_ID, "Пост", channel=channel)
    event = NORMALIZER.normalize(tg.comment(311, "Вопрос", root=root))
    assert event.url == "https://t.me/c/1700000001/42?comment=311"


def test_comment_without_message_thread_id_is_found_through_the_forward():
    upd = question()
    del upd["message"]["message_thread_id"]
    event = NORMALIZER.normalize(upd)
    assert (event.thread_id, event.parent_id) == (THREAD, None)


def test_nested_reply_keeps_its_parent_and_the_thread():
    first = question(311)
    reply = tg.comment(312, "Присоединяюсь к вопросу", root=forward(), reply_to=first,
                       author=tg.user(5100002, "Ольга", None))
    event = NORMALIZER.normalize(reply)
    assert (event.item_id, event.thread_id, event.parent_id) == ("312", THREAD, "311")
    assert event.reply_to_user == "5100001"
    assert not event.by_page
    # the channel post id is not in a nested reply: the link is the group's thread link
    assert event.url == "https://t.me/c/1700000002/312?thread=310"


def test_the_channels_own_reply_is_by_the_page_and_answers_the_question():
    from streams.tracking.answers import is_answer
    from streams.tracking.questions import TrackedQuestion

    asked = NORMALIZER.normalize(question(311, date=tg.BASE_DATE + 60))
    answer = NORMALIZER.normalize(
        tg.comment(313, "Ремонт закончат к пятнице", root=forward(), reply_to=question(311),
                   sender_chat=tg.channel_chat(), date=tg.BASE_DATE + 3600)
    )
    assert answer.by_page and answer.author_id == str(tg.CHANNEL_ID)
    assert (answer.thread_id, answer.parent_id) == (asked.thread_id, asked.item_id)
    tracked = TrackedQuestion(
        page_id=asked.page_id, platform="telegram", item_id=asked.item_id,
        thread_id=asked.thread_id, author_id=asked.author_id, text=asked.text, url=asked.url,
        asked_at=asked.created_at, deadline_at=asked.created_at + 86400,
    )
    assert is_answer(answer, tracked)
    citizen = NORMALIZER.normalize(
        tg.comment(316, "Ответ не от администрации", root=forward(), reply_to=question(311),
                   date=tg.BASE_DATE + 3600)
    )
    assert not is_answer(citizen, tracked)


def test_anonymous_admin_writing_as_the_group_is_the_page():
    event = NORMALIZER.normalize(
        tg.comment(314, "Уточним у подрядчика", root=forward(), reply_to=question(311),
                   sender_chat=tg.group_chat())
    )
    assert event.by_page and event.author_id == str(tg.GROUP_ID)
    assert event.parent_id == "311"


def test_a_comment_on_behalf_of_another_channel_is_not_the_page():
    other = tg.channel_chat(-1001799999999, username="someone_else")
    event = NORMALIZER.normalize(tg.comment(315, "Мы тоже ждём", root=forward(),
                                            sender_chat=other))
    assert not event.by_page and event.author_id == "-1001799999999"


def test_edited_comment():
    original = question(311, date=tg.BASE_DATE + 60)
    edit = tg.edited(original, "Когда закончат ремонт на Советской?",
                     edit_date=tg.BASE_DATE + 900)
    first, changed = NORMALIZER.normalize(original), NORMALIZER.normalize(edit)
    assert (changed.kind, changed.action, changed.item_id) == ("comment", "edit", "311")
    assert changed.thread_id == first.thread_id
    assert changed.created_at == float(tg.BASE_DATE + 900)
    assert changed.text == "Когда закончат ремонт на Советской?"
    assert changed.event_id != first.event_id


def test_event_id_is_deterministic_across_deliveries():
    upd = question(311)
    again = json.loads(json.dumps({**upd, "update_id": upd["update_id"] + 1000}))
    assert NORMALIZER.normalize(upd).event_id == NORMALIZER.normalize(again).event_id
    assert NORMALIZER.normalize_bytes(json.dumps(upd).encode()) == NORMALIZER.normalize(upd)


@pytest.mark.parametrize(
    "upd",
    [
        pytest.param(forward(), id="automatic-forward"),
        pytest.param(tg.edited(forward(), "Пост (изм.)", tg.BASE_DATE + 5), id="edited-forward"),
        pytest.param(tg.group_chatter(200, "Всем привет"), id="group-chat-outside-threads"),
        pytest.param(tg.member_joined(201), id="service-message"),
        pytest.param(tg.channel_post(43, "Пост", channel=tg.channel_chat(-1001711111111)),
                     id="unknown-channel"),
        pytest.param(tg.comment(5, "Вопрос", root=tg.automatic_forward(
            4, 3, "Пост", channel=tg.channel_chat(-1001711111111),
            group=tg.group_chat(-1001711111112))), id="unknown-discussion-group"),
        pytest.param({"update_id": 1, "callback_query": {"id": "1"}}, id="other-update-type"),
        pytest.param({"update_id": 1}, id="empty-update"),
    ],
)
def test_untracked_updates_are_none(upd):
    assert NORMALIZER.normalize(upd) is None


def test_a_reply_to_a_plain_group_message_is_not_a_comment():
    # without topics, any reply opens a "thread" named after the replied-to message
    chatter = tg.group_chatter(200, "Кто знает, где купить билеты?")
    reply = tg.group_chatter(201, "На вокзале")
    reply["message"].update(message_thread_id=200,
                            reply_to_message=tg.message_of(chatter))
    assert NORMALIZER.normalize(reply) is None


def test_known_limit_a_deep_reply_in_a_plain_chain_looks_like_a_nested_comment():
    # 202 replies to 201, which replied to the plain message 200: the root is not in 202,
    # so it cannot be told apart from a nested comment (module docstring, "Known limit")
    first = tg.group_chatter(201, "На вокзале")
    first["message"].update(message_thread_id=200)
    deep = tg.group_chatter(202, "Спасибо")
    deep["message"].update(message_thread_id=200, reply_to_message=tg.message_of(first))
    event = NORMALIZER.normalize(deep)
    assert (event.kind, event.thread_id, event.parent_id) == ("comment", "discussion-200", "201")


def test_forum_topic_message_is_not_a_comment():
    upd = tg.group_chatter(202, "Вопрос в теме форума")
    upd["message"].update(message_thread_id=150, is_topic_message=True)
    assert NORMALIZER.normalize(upd) is None


def test_a_channel_without_discussion_group_still_has_posts():
    lonely = -1001722222222
    normalizer = TelegramNormalizer({}, channels=[lonely])
    event = normalizer.normalize(tg.channel_post(1, "Пост", channel=tg.channel_chat(lonely)))
    assert event.page_id == f"telegram:{lonely}"


def test_internal_chat_id():
    assert internal_chat_id(-1001700000001) == 1700000001
    assert internal_chat_id(-4567) == 4567


def _without(path: tuple, value=REMOVE) -> bytes:
    return json.dumps(altered(question(311), path, value)).encode()


@pytest.mark.parametrize(
    ("raw", "reason", "says"),
    [
        (b'{"message": {"message_id": 1}}', "missing_field", "'update_id'"),
        (b'{"update_id": "7", "message": {}}', "invalid_field", "'update_id'"),
        (b'{"update_id": 7, "channel_post": "text"}', "invalid_field", "channel_post"),
        (_without(("message", "message_id")), "missing_field", "'message_id'"),
        (_without(("message", "date")), "missing_field", "'date'"),
        (_without(("message", "chat")), "missing_field", "'chat'"),
        (_without(("message", "date"), "2026-11-26"), "invalid_field", "'date'"),
        (_without(("message", "message_id"), True), "invalid_field", "'message_id'"),
        (_without(("message", "chat"), -1001700000002), "invalid_field", "'chat'"),
        (_without(("message", "chat", "id")), "missing_field", "'id'"),
        (_without(("message", "text"), 5), "invalid_field", "'text'"),
        (_without(("message", "from")), "missing_field", "'from'"),
        (_without(("message", "message_thread_id"), "310"), "invalid_field",
         "'message_thread_id'"),
        (_without(("message", "reply_to_message"), 310), "invalid_field", "'reply_to_message'"),
        (_without(("message", "reply_to_message", "message_id")), "missing_field",
         "'message_id'"),
    ],
)
def test_malformed_updates_say_why(raw, reason, says):
    with pytest.raises(InvalidPayload) as error:
        NORMALIZER.normalize_bytes(raw)
    assert error.value.reason == reason
    assert says in str(error.value)
