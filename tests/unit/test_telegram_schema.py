"""The Telegram payloads Dozor's tests use validate against the official Bot API spec.

The spec (``<workspace>/shared/data/telegram-bot-api/api.json``, Bot API 10.1 scraped by
telegram-bot-api-spec) is not JSON Schema; tests/support/telegram_schema.py translates it
into one (the rules are in its docstring). Checked here:

- every kind of Update the payload builders make (the same builders feed the normaliser's
  unit tests and the fake Bot API server) is a valid ``Update``;
- what the fake server answers (getUpdates result, getChat) is a valid ``Update`` /
  ``ChatFullInfo``;
- the translation really rejects broken payloads (so "valid" means something);
- the normaliser's list of service-message fields covers every field the spec documents as a
  service message, and the update types the connector asks for exist in the spec.
"""

from __future__ import annotations


import pytest

from streams.normalize.telegram import HANDLED_UPDATES, SERVICE_FIELDS
from tests.support import telegram_payloads as tg
from tests.support.payloads import altered
from tests.support.telegram_schema import errors, spec

ROOT = tg.automatic_forward(310, 42, "Ремонт дороги")
QUESTION = tg.comment(311, "Когда закончат?", root=ROOT)

BUILT_UPDATES = {
    "channel_post": tg.channel_post(42, "Ремонт дороги"),
    "photo_post": tg.channel_post(43, "Фото", caption=True),
    "private_channel_post": tg.channel_post(44, "Пост", channel=tg.channel_chat(username=None)),
    "edited_channel_post": tg.edited(tg.channel_post(42, "Ремонт"), "Ремонт дороги", 1795594000),
    "automatic_forward": ROOT,
    "comment": QUESTION,
    "edited_comment": tg.edited(QUESTION, "Когда закончат ремонт?", 1795594000),
    "nested_reply": tg.comment(312, "Тоже жду", root=ROOT, reply_to=QUESTION),
    "channel_reply": tg.comment(313, "К пятнице", root=ROOT, reply_to=QUESTION,
                                sender_chat=tg.channel_chat()),
    "anonymous_admin_reply": tg.comment(314, "Уточним", root=ROOT, reply_to=QUESTION,
                                        sender_chat=tg.group_chat()),
    "group_chatter": tg.group_chatter(200, "Привет"),
    "member_joined": tg.member_joined(201),
}


@pytest.mark.parametrize("name", sorted(BUILT_UPDATES))
def test_built_updates_are_valid_bot_api_updates(name):
    assert errors("Update", BUILT_UPDATES[name]) == []


def test_fake_server_answers_validate():
    from tests.support.fake_telegram import FakeTelegram

    with FakeTelegram(token="123:ok") as fake:
        for upd in sorted(BUILT_UPDATES.values(), key=lambda u: u["update_id"]):
            fake.add_update(upd)
        fake.add_chat(tg.channel_chat(), linked_chat_id=tg.GROUP_ID)
        import httpx

        got = httpx.get(f"{fake.url}/bot123:ok/getUpdates", params={"timeout": 0}).json()
        chat = httpx.get(f"{fake.url}/bot123:ok/getChat",
                         params={"chat_id": tg.CHANNEL_ID}).json()
    assert got["ok"] is True and len(got["result"]) == len(BUILT_UPDATES)
    for upd in got["result"]:
        assert errors("Update", upd) == []
    assert chat["ok"] is True and errors("ChatFullInfo", chat["result"]) == []
    assert chat["result"]["linked_chat_id"] == tg.GROUP_ID


@pytest.mark.parametrize(
    "upd",
    [
        altered(QUESTION, ("update_id",)),                               # required in Update
        altered(QUESTION, ("message", "date")),                          # required in Message
        altered(QUESTION, ("message", "chat", "type")),                  # required in Chat
        altered(QUESTION, ("message", "from", "is_bot")),                # required in User
        altered(QUESTION, ("message", "date"), "2026-11-26"),            # Integer
        altered(QUESTION, ("message", "text"), 5),                       # String
        altered(QUESTION, ("message", "forward_from_message_id"), 42),   # removed in Bot API 7.0
        altered(ROOT, ("message", "forward_origin", "type"), "channels"),  # always "channel"
        altered(ROOT, ("message", "forward_origin", "message_id")),      # MessageOriginChannel
        altered(ROOT, ("message", "is_automatic_forward"), "true"),      # Boolean
        altered(BUILT_UPDATES["photo_post"], ("channel_post", "photo", 0, "width")),  # Array of
        altered(QUESTION, ("message", "reply_to_message", "chat", "id"), "-100"),  # nested Message
        {"update_id": 1, "channel_post": "text"},
    ],
)
def test_broken_updates_fail(upd):
    assert errors("Update", upd), f"expected schema errors for {upd}"


def test_service_fields_cover_the_spec():
    message = {f["name"]: f for f in spec()["types"]["Message"]["fields"]}
    documented = {name for name, f in message.items() if "Service message" in f["description"]}
    assert documented <= SERVICE_FIELDS, sorted(documented - SERVICE_FIELDS)
    assert SERVICE_FIELDS <= set(message), sorted(SERVICE_FIELDS - set(message))


def test_handled_update_types_exist_in_the_spec():
    update = {f["name"]: f for f in spec()["types"]["Update"]["fields"]}
    for kind in HANDLED_UPDATES:
        assert update[kind]["types"] == ["Message"]
    from services.ingest.telegram_api import ALLOWED_UPDATES

    assert set(ALLOWED_UPDATES) == set(HANDLED_UPDATES)  # the connector asks for what we read
    method = {f["name"] for f in spec()["methods"]["getUpdates"]["fields"]}
    assert {"offset", "limit", "timeout", "allowed_updates"} <= method
