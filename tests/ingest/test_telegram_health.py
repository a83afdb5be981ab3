"""Per-page health of `dozor ingest telegram` against the fake Bot API (no broker).

One getUpdates serves every channel, so a bot demoted in one channel is only seen by the
periodic per-page check (getChat + getChatMember of channel and discussion group). A failing
page must show a failure newer than its success (alert DozorConnectorFailing), with the reason
in the API error counter and one Russian log line; the other pages stay healthy.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from services.ingest.metrics import IngestMetrics
from services.ingest.telegram import (
    TelegramConnector,
    UpdateRouter,
    call_counter,
    member_problem,
)
from services.ingest.telegram_api import TelegramClient, TelegramUnauthorized
from streams.pages import Page, PageRegistry
from tests.support import telegram_payloads as tg
from tests.support.fake_telegram import FakeTelegram, chat_member
from tests.support.telegram_schema import errors

TOKEN = "7000001:AAFakeTokenForDozorTests"
BOT = 7000001
A_CHANNEL, A_GROUP = tg.CHANNEL_ID, tg.GROUP_ID
B_CHANNEL, B_GROUP = -1001700000011, -1001700000012
PAGE_A, PAGE_B = f"telegram:{A_CHANNEL}", f"telegram:{B_CHANNEL}"


class _Producer:
    def __init__(self) -> None:
        self.sent: list = []

    async def send_many(self, topic, items):
        self.sent.extend(items)
        return len(items)


class _Cursors:
    def __init__(self) -> None:
        self.values: dict = {}

    def get(self, key, default=None):
        return self.values.get(key, default)

    async def commit(self, key, value):
        self.values[key] = value


def router() -> UpdateRouter:
    pages = [Page(f"telegram:{channel}", "telegram", name, "Район", "администрация",
                  connector="telegram", telegram_discussion_id=group)
             for channel, group, name in ((A_CHANNEL, A_GROUP, "Канал А"),
                                          (B_CHANNEL, B_GROUP, "Канал Б"))]
    return UpdateRouter.from_registry(PageRegistry(pages))


def healthy_fake(fake: FakeTelegram) -> None:
    """Both channels and groups exist; the bot administers all four chats."""
    for channel, group in ((A_CHANNEL, A_GROUP), (B_CHANNEL, B_GROUP)):
        fake.add_chat(tg.channel_chat(channel, username=None), linked_chat_id=group)
        fake.add_chat(tg.group_chat(group))
        fake.set_member(channel, BOT, "administrator")
        fake.set_member(group, BOT, "administrator")


def connector(client, metrics, **options) -> tuple[TelegramConnector, _Producer]:
    producer = _Producer()
    return TelegramConnector(client, producer, _Cursors(), router(), metrics, "raw",
                             poll_timeout=0, **options), producer


def value(metrics: IngestMetrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def success(metrics, page):
    return value(metrics, "dozor_ingest_last_success_timestamp_seconds", page_id=page)


def failure(metrics, page):
    return value(metrics, "dozor_ingest_last_failure_timestamp_seconds", page_id=page)


def page_lines(caplog, page: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if page in r.getMessage() and "не читается" in r.getMessage()]


async def test_a_demoted_bot_shows_as_failing_and_the_other_page_stays_healthy(caplog):
    caplog.set_level(logging.INFO, logger="dozor.ingest.telegram")
    metrics = IngestMetrics()
    with FakeTelegram(token=TOKEN) as fake:
        healthy_fake(fake)
        fake.set_member(B_CHANNEL, BOT, "member")  # the channel's owner demoted the bot
        fake.add_update(tg.channel_post(42, "Пост канала Б",
                                        channel=tg.channel_chat(B_CHANNEL, username=None)))
        async with TelegramClient(TOKEN, fake.url, on_call=call_counter(metrics)) as client:
            tc, producer = connector(client, metrics)
            await tc.start()
            # later rounds succeed (updates of B still arrive from before the demotion) ...
            await tc.poll_once()
            await tc.poll_once()
    assert [key for key, _ in producer.sent] == [PAGE_B]
    # ... but B never gets a success: its failure stays the newest (DozorConnectorFailing)
    assert failure(metrics, PAGE_B) > 0 and success(metrics, PAGE_B) is None
    assert success(metrics, PAGE_A) > 0 and failure(metrics, PAGE_A) is None
    assert value(metrics, "dozor_ingest_api_errors_total", connector="telegram",
                 code="not_admin") == 1
    lines = page_lines(caplog, PAGE_B)
    assert len(lines) == 1 and "не администратор канала" in lines[0] and "member" in lines[0]
    assert page_lines(caplog, PAGE_A) == []
    assert tc.healthy == {PAGE_A: True, PAGE_B: False}
    # the check asked about the bot itself; B's check ended at its channel
    asked = {(int(p["chat_id"]), int(p["user_id"]))
             for p in fake.method_calls("getChatMember")}
    assert asked == {(A_CHANNEL, BOT), (A_GROUP, BOT), (B_CHANNEL, BOT)}


async def test_removed_bot_counts_the_api_error_code_and_recovery_is_seen(caplog):
    caplog.set_level(logging.INFO, logger="dozor.ingest.telegram")
    metrics = IngestMetrics()
    with FakeTelegram(token=TOKEN) as fake:
        healthy_fake(fake)
        fake.forbid(B_GROUP)  # the bot was removed from B's discussion group
        async with TelegramClient(TOKEN, fake.url, on_call=call_counter(metrics)) as client:
            tc, _ = connector(client, metrics)
            first = {h.page_id: h for h in await tc.check_health()}
            await tc.poll_once()
            assert not first[PAGE_B].ok and first[PAGE_B].code == "403"
            assert f"группа обсуждения {B_GROUP}" in first[PAGE_B].reason
            assert value(metrics, "dozor_ingest_api_errors_total", connector="telegram",
                         code="403") == 1
            failed_at = failure(metrics, PAGE_B)
            assert success(metrics, PAGE_B) is None and success(metrics, PAGE_A) > 0

            fake.forbidden.clear()  # the bot was added back
            await tc.check_health()
            await tc.poll_once()
    assert success(metrics, PAGE_B) >= failed_at
    assert tc.healthy[PAGE_B] is True
    assert any("снова читается" in r.getMessage() and PAGE_B in r.getMessage()
               for r in caplog.records)
    assert len(page_lines(caplog, PAGE_B)) == 1


async def test_a_plain_group_member_needs_privacy_mode_off():
    for privacy_mode, ok in ((True, False), (False, True)):
        metrics = IngestMetrics()
        with FakeTelegram(token=TOKEN, privacy_mode=privacy_mode) as fake:
            healthy_fake(fake)
            fake.set_member(A_GROUP, BOT, "member")
            async with TelegramClient(TOKEN, fake.url, on_call=call_counter(metrics)) as client:
                tc, _ = connector(client, metrics)
                health = {h.page_id: h for h in await tc.check_health()}
        assert health[PAGE_A].ok is ok, health[PAGE_A]
        assert health[PAGE_B].ok
        if not ok:
            assert health[PAGE_A].code == "privacy_mode"
            assert value(metrics, "dozor_ingest_api_errors_total", connector="telegram",
                         code="privacy_mode") == 1


async def test_the_running_connector_checks_pages_periodically():
    metrics = IngestMetrics()
    with FakeTelegram(token=TOKEN, max_poll_seconds=0.2) as fake:
        healthy_fake(fake)
        async with TelegramClient(TOKEN, fake.url, on_call=call_counter(metrics)) as client:
            tc, _ = connector(client, metrics, health_interval=0.3)
            tc.poll_timeout = 1  # the fake answers after 0.2 s: a round every 0.2 s
            stop = asyncio.Event()
            task = asyncio.create_task(tc.run(stop))
            try:
                for _ in range(100):  # until the first check passed (poll, no sleep-as-sync)
                    if success(metrics, PAGE_B):
                        break
                    await asyncio.sleep(0.05)
                assert success(metrics, PAGE_B) and failure(metrics, PAGE_B) is None
                fake.set_member(B_CHANNEL, BOT, "left")  # demoted while running
                for _ in range(100):
                    if failure(metrics, PAGE_B):
                        break
                    await asyncio.sleep(0.05)
                assert failure(metrics, PAGE_B) > success(metrics, PAGE_B)
                # rounds go on; A keeps getting successes, B does not
                a_before = success(metrics, PAGE_A)
                for _ in range(100):
                    if success(metrics, PAGE_A) > a_before:
                        break
                    await asyncio.sleep(0.05)
                assert success(metrics, PAGE_A) > a_before
                assert failure(metrics, PAGE_B) > success(metrics, PAGE_B)
            finally:
                stop.set()
                await asyncio.wait_for(task, 5)
    assert len(fake.method_calls("getMe")) >= 2  # more than the first check


async def test_a_revoked_token_in_the_check_stops_the_connector():
    with FakeTelegram(token=TOKEN) as fake:
        healthy_fake(fake)
        async with TelegramClient("7000001:Revoked", fake.url) as client:
            tc, _ = connector(client, IngestMetrics())
            with pytest.raises(TelegramUnauthorized):
                await tc.start()


def test_member_problem_rules():
    def problem(status, channel, reads_all=False, **extra):
        member = {**chat_member(status, BOT, BOT), **extra}
        found = member_problem(member, channel=channel, reads_all_group_messages=reads_all)
        return found[0] if found else None

    assert problem("administrator", True) is None and problem("creator", True) is None
    assert [problem(s, True) for s in ("member", "left", "kicked", "restricted")] == [
        "not_admin"] * 4
    assert problem("administrator", False) is None
    assert problem("member", False) == "privacy_mode" and problem("member", False, True) is None
    assert problem("restricted", False, True) is None
    assert problem("restricted", False, True, is_member=False) == "not_member"
    assert problem("left", False, True) == "not_member"
    assert problem("kicked", False, True) == "not_member"


def test_fake_get_chat_member_and_get_me_answers_validate():
    with FakeTelegram(token=TOKEN, privacy_mode=False) as fake:
        healthy_fake(fake)
        fake.set_member(B_CHANNEL, BOT, "kicked")
        fake.set_member(B_GROUP, 5100001, "restricted")
        base = f"{fake.url}/bot{TOKEN}"
        answers = [httpx.post(f"{base}/getChatMember", data={"chat_id": c, "user_id": u}).json()
                   for c, u in ((A_CHANNEL, BOT), (B_CHANNEL, BOT), (B_GROUP, 5100001),
                                (A_GROUP, 5100002))]
        me = httpx.post(f"{base}/getMe").json()
        missing = httpx.post(f"{base}/getChatMember",
                             data={"chat_id": -100999, "user_id": BOT}).json()
    assert [a["result"]["status"] for a in answers] == [
        "administrator", "kicked", "restricted", "left"]
    for answer in answers:
        assert errors("ChatMember", answer["result"]) == []
    assert errors("User", me["result"]) == [] and me["result"]["can_read_all_group_messages"]
    assert missing == {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
    # the translation rejects a ChatMember that lacks what its status requires
    broken = chat_member("administrator", BOT, BOT)
    del broken["can_delete_messages"]
    assert errors("ChatMember", broken) != []
