"""`dozor ingest telegram` against the fake Bot API (tests/support/fake_telegram.py).

Without a broker: the raw-bytes split of getUpdates answers, routing of updates to pages,
the client's retries (429 retry_after, dropped connections, 5xx) and its 401 error, the
produce-then-offset order. With the test broker (`kafka_bootstrap`): posts, comments, edits
and the channel's reply reach the raw topic keyed by page and byte for byte unchanged;
unregistered chats are skipped; a restart resumes from the stored offset with no duplicate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from services.ingest.metrics import IngestMetrics
from services.ingest.producer import ProduceFailed
from services.ingest.telegram import (
    NO_TOKEN_MESSAGE,
    UNKNOWN_PAGE,
    TelegramConnector,
    UpdateRouter,
    run,
    run_connector,
)
from services.ingest.telegram_api import (
    ALLOWED_UPDATES,
    TelegramApiError,
    TelegramClient,
    TelegramTransportError,
    TelegramUnauthorized,
    split_updates,
)
from services.settings import Settings
from streams.pages import PageRegistry
from tests.support import telegram_payloads as tg
from tests.support.fake_telegram import FakeTelegram
from tests.support.kafka import consume
from tests.support.observe import metric_samples

REPO = Path(__file__).resolve().parents[2]
TOKEN = "7000001:AAFakeTokenForDozorTests"
PAGE = f"telegram:{tg.CHANNEL_ID}"
OTHER_CHANNEL = tg.channel_chat(-1001799000001, username="not_registered")
OTHER_GROUP = tg.group_chat(-1001799000002)


def registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "pages.yaml"
    path.write_text(tg.registry_yaml({"page_id": "vk:-2100001", "name": "ВК-страница",
                                      "municipality": "Тестовый район"}), encoding="utf-8")
    return path


def scenario() -> list[dict]:
    """Post, its forward, a question, an edit, the channel's answer, and foreign chats."""
    ids = iter(range(500_001, 500_100))
    post = tg.channel_post(42, "Ремонт дороги на Советской", update_id=next(ids))
    root = tg.automatic_forward(310, 42, "Ремонт дороги на Советской", update_id=next(ids))
    question = tg.comment(311, "Когда закончат ремонт?", root=root, update_id=next(ids))
    foreign_post = tg.channel_post(7, "Чужой канал", channel=OTHER_CHANNEL,
                                   update_id=next(ids))
    foreign_comment = tg.comment(
        9, "Чужая группа", update_id=next(ids),
        root=tg.automatic_forward(8, 7, "Чужой канал", channel=OTHER_CHANNEL, group=OTHER_GROUP),
    )
    edit = tg.edited(question, "Когда закончат ремонт на Советской?", tg.BASE_DATE + 900,
                     update_id=next(ids))
    answer = tg.comment(312, "Ремонт закончат к пятнице", root=root, reply_to=question,
                        sender_chat=tg.channel_chat(), date=tg.BASE_DATE + 3600,
                        update_id=next(ids))
    return [post, root, question, foreign_post, foreign_comment, edit, answer]


REGISTERED = [0, 1, 2, 5, 6]  # indexes in scenario() of updates of the registered page


# --- without a broker ---------------------------------------------------------------------


def test_split_updates_keeps_each_update_byte_for_byte():
    first = ('{"update_id":1, "message" : '
             '{"text":"\\u041f\\u0440\\u0438\\u0432\\u0435\\u0442",\n "x":1.50}}')
    second = '{ "update_id" : 2 , "channel_post":{"text":"Привет, \\"мир\\"","n":[1, 2]} }'
    body = '{"ok":true,\n "description": "x", "result" : [ ' + first + " ,\n" + second + " ]}"
    updates = split_updates(body)
    assert [u.raw.decode() for u in updates] == [first, second]
    assert [(u.update_id, u.type) for u in updates] == [(1, "message"), (2, "channel_post")]
    assert updates[0].data["message"]["text"] == "Привет"
    assert split_updates('{"ok": true, "result": []}') == []
    with pytest.raises(ValueError):
        split_updates('{"ok": true, "result": [{"message": {}}]}')


def test_router_maps_channels_and_discussion_groups_to_pages(tmp_path):
    router = UpdateRouter.from_registry(PageRegistry.load(registry_file(tmp_path)))
    routes = [router.route(u) for u in scenario()]
    assert routes == [PAGE, PAGE, PAGE, None, None, PAGE, PAGE]
    # an update without a readable chat goes to the worker, which dead-letters it
    assert router.route({"update_id": 1, "message": {"message_id": 1}}) == UNKNOWN_PAGE
    assert router.route({"update_id": 1, "callback_query": {"id": "1"}}) is None
    # a group message in the channel's own chat id is not a channel post
    assert router.route(tg.update("message", tg.message_of(scenario()[0]))) is None


def test_only_pages_with_the_telegram_connector_are_read():
    from streams.pages import Page

    not_live = Page(PAGE, "telegram", "Канал", "Район", "администрация",
                    telegram_discussion_id=tg.GROUP_ID)
    router = UpdateRouter.from_registry(PageRegistry([not_live]))
    assert router.channels == {} and router.route(scenario()[0]) is None


async def test_client_retries_rate_limits_and_network_errors():
    calls = []
    with FakeTelegram(token=TOKEN) as fake:
        fake.add_update(scenario()[0])
        fake.rate_limit(1, retry_after=1)
        fake.drop(1)
        fake.fail(1, 502)
        async with TelegramClient(TOKEN, fake.url, backoff_base=0.05,
                                  on_call=lambda o, c: calls.append((o, c))) as client:
            loop = asyncio.get_running_loop()
            started = loop.time()
            updates = await client.get_updates(None, timeout=0)
            waited = loop.time() - started
    assert [u.update_id for u in updates] == [500_001]
    assert waited >= 1.0  # retry_after was respected
    assert calls == [("api_error", 429), ("http_error", None), ("api_error", 502), ("ok", None)]
    sent = fake.method_calls("getUpdates")[-1]
    assert json.loads(sent["allowed_updates"]) == list(ALLOWED_UPDATES)


async def test_client_gives_up_after_max_attempts_and_on_other_errors():
    with FakeTelegram(token=TOKEN) as fake:
        fake.drop(3)
        async with TelegramClient(TOKEN, fake.url, backoff_base=0.01, max_attempts=3) as client:
            with pytest.raises(TelegramTransportError):
                await client.get_updates(None, timeout=0)
            with pytest.raises(TelegramApiError) as error:
                await client.get_chat(-1009999)  # 400 chat not found: not retried
    assert error.value.code == 400 and "chat not found" in error.value.description
    assert len(fake.method_calls("getChat")) == 1


async def test_wrong_token_is_a_clear_error_and_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    with FakeTelegram(token=TOKEN) as fake:
        fake.drop(1)  # a retried failure: the warning line must not show the token either
        async with TelegramClient("7000001:WrongSecret", fake.url, backoff_base=0.01) as client:
            with pytest.raises(TelegramUnauthorized) as error:
                await client.get_updates(None, timeout=0)
    assert "DOZOR_TELEGRAM_BOT_TOKEN" in str(error.value) and "401" in str(error.value)
    assert "WrongSecret" not in str(error.value)
    assert caplog.records and all("WrongSecret" not in r.getMessage() for r in caplog.records)


async def test_long_poll_waits_for_an_update():
    with FakeTelegram(token=TOKEN, max_poll_seconds=5) as fake:
        async with TelegramClient(TOKEN, fake.url) as client:
            poll = asyncio.create_task(client.get_updates(None, timeout=5))
            await asyncio.sleep(0.3)
            assert not poll.done()
            fake.add_update(scenario()[0])
            updates = await asyncio.wait_for(poll, 5)
    assert [u.update_id for u in updates] == [500_001]


class _StubProducer:
    def __init__(self, fail: bool) -> None:
        self.fail, self.sent = fail, []

    async def send_many(self, topic, items):
        if self.fail:
            raise ProduceFailed("broker down")
        self.sent.extend(items)
        return len(items)


class _StubCursors:
    def __init__(self) -> None:
        self.values, self.commits = {}, []

    def get(self, key, default=None):
        return self.values.get(key, default)

    async def commit(self, key, value):
        self.values[key] = value
        self.commits.append((key, value))


async def test_offset_is_stored_only_after_kafka_acknowledged(tmp_path):
    router = UpdateRouter.from_registry(PageRegistry.load(registry_file(tmp_path)))
    with FakeTelegram(token=TOKEN) as fake:
        for upd in scenario()[:3]:
            fake.add_update(upd)
        async with TelegramClient(TOKEN, fake.url) as client:
            cursors, metrics = _StubCursors(), IngestMetrics()
            down = TelegramConnector(client, _StubProducer(fail=True), cursors, router,
                                     metrics, "raw", poll_timeout=0)
            with pytest.raises(ProduceFailed):
                await down.poll_once()
            assert cursors.commits == [] and down.offset is None
            up = TelegramConnector(client, _StubProducer(fail=False), cursors, router,
                                   metrics, "raw", poll_timeout=0)
            result = await up.poll_once()
    assert result.produced == 3  # the same updates again: nothing was confirmed or lost
    assert cursors.commits == [("telegram:offset:7000001", 500_004)]


def test_no_token_exits_cleanly():
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("DOZOR_")}
    done = subprocess.run([sys.executable, "-m", "services.cli", "ingest", "telegram"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "коннектор не запущен" in done.stdout and "not started" in done.stdout
    assert done.stdout.strip() == NO_TOKEN_MESSAGE.strip()


# --- with the broker ----------------------------------------------------------------------


def _settings(kafka_bootstrap: str, fake: FakeTelegram, tmp_path: Path, prefix: str,
              token: str = TOKEN) -> Settings:
    return Settings(
        kafka_bootstrap=kafka_bootstrap,
        telegram_bot_token=token,
        telegram_api_url=fake.url,
        topic_raw_telegram=f"{prefix}.raw.telegram",
        topic_ingest_cursors=f"{prefix}.ingest-cursors",
        pages_file=registry_file(tmp_path),
        ingest_metrics_port=0,
    )


@pytest.mark.broker
async def test_updates_reach_the_raw_topic_keyed_by_page_and_unchanged(kafka_bootstrap, tmp_path):
    prefix = f"tg{uuid.uuid4().hex[:8]}"
    updates = scenario()
    metrics = IngestMetrics()
    with FakeTelegram(token=TOKEN) as fake:
        fake.add_chat(tg.channel_chat(), linked_chat_id=tg.GROUP_ID)
        fake.add_chat(tg.group_chat())
        fake.set_member(tg.CHANNEL_ID, fake.bot_id, "administrator")
        fake.set_member(tg.GROUP_ID, fake.bot_id, "administrator")
        for upd in updates:
            fake.add_update(upd)
        fake.rate_limit(1, retry_after=1)  # the first call (getMe of the health check) waits
        settings = _settings(kafka_bootstrap, fake, tmp_path, prefix)
        result = await run_connector(settings, metrics, once=True)
    assert (result.received, result.produced, result.skipped) == (7, 5, 2)
    assert result.offset == updates[-1]["update_id"] + 1

    records = await asyncio.to_thread(consume, kafka_bootstrap, settings.topic_raw_telegram,
                                      lambda m: len(m) >= 5, 30)
    records.sort(key=lambda r: json.loads(r.value)["update_id"])
    assert [r.key.decode() for r in records] == [PAGE] * 5
    # byte for byte what the Bot API sent (the fake serialises with ensure_ascii=False)
    assert [r.value for r in records] == [
        json.dumps(updates[i], ensure_ascii=False).encode() for i in REGISTERED
    ]
    text = _exposition(metrics)
    produced = metric_samples(text, "dozor_ingest_events_total")
    assert produced == {
        (("platform", "telegram"), ("type", "channel_post")): 1.0,
        (("platform", "telegram"), ("type", "message")): 3.0,
        (("platform", "telegram"), ("type", "edited_message")): 1.0,
    }
    requests = metric_samples(text, "dozor_ingest_requests_total")
    assert requests[(("connector", "telegram"), ("outcome", "unknown_page"))] == 2
    # the health check (getMe, getChat and getChatMember of channel and group), getUpdates
    assert requests[(("connector", "telegram"), ("outcome", "ok"))] == 6
    assert requests[(("connector", "telegram"), ("outcome", "api_error"))] == 1
    assert metric_samples(text, "dozor_ingest_api_errors_total") == {
        (("code", "429"), ("connector", "telegram")): 1.0}
    assert metric_samples(text, "dozor_ingest_last_success_timestamp_seconds")[
        (("page_id", PAGE),)] > 1.7e9


@pytest.mark.broker
async def test_restart_resumes_from_the_stored_offset_without_duplicates(
    kafka_bootstrap, tmp_path
):
    prefix = f"tg{uuid.uuid4().hex[:8]}"
    updates = [u for i, u in enumerate(scenario()) if i in REGISTERED]
    with FakeTelegram(token=TOKEN) as fake:
        settings = _settings(kafka_bootstrap, fake, tmp_path, prefix)
        for upd in updates[:3]:
            fake.add_update(upd)
        first = await run_connector(settings, IngestMetrics(), once=True)
        # Telegram has not been told yet: only the next getUpdates confirms these three
        assert len(fake.updates) == 3 and first.offset == updates[2]["update_id"] + 1
        for upd in updates[3:]:
            fake.add_update(upd)
        second = await run_connector(settings, IngestMetrics(), once=True)
        resumed_with = fake.method_calls("getUpdates")[-1].get("offset")
    assert resumed_with == str(first.offset)
    assert second.produced == 2 and second.offset == updates[-1]["update_id"] + 1

    records = await asyncio.to_thread(consume, kafka_bootstrap, settings.topic_raw_telegram,
                                      lambda m: len(m) >= 6, 8)
    ids = [json.loads(r.value)["update_id"] for r in records]
    assert sorted(ids) == [u["update_id"] for u in updates]  # each once: no duplicate


@pytest.mark.broker
def test_wrong_token_stops_the_connector_with_the_reason(kafka_bootstrap, tmp_path, capsys):
    with FakeTelegram(token=TOKEN) as fake:
        settings = _settings(kafka_bootstrap, fake, tmp_path, f"tg{uuid.uuid4().hex[:8]}",
                             token="7000001:Wrong")
        code = run(settings, type("Args", (), {"once": True})())
    err = capsys.readouterr().err
    assert code == 3
    assert "401" in err and "DOZOR_TELEGRAM_BOT_TOKEN" in err and "Wrong" not in err


def _exposition(metrics: IngestMetrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


async def test_running_connector_survives_a_failed_round_and_stops_promptly(tmp_path):
    router = UpdateRouter.from_registry(PageRegistry.load(registry_file(tmp_path)))
    metrics, producer, cursors = IngestMetrics(), _StubProducer(fail=False), _StubCursors()
    with FakeTelegram(token=TOKEN, max_poll_seconds=30) as fake:
        fake.fail(1, 502)
        fake.add_update(scenario()[0])
        async with TelegramClient(TOKEN, fake.url, max_attempts=1) as client:
            # no health check: this test is about failed getUpdates rounds
            connector = TelegramConnector(client, producer, cursors, router, metrics, "raw",
                                          poll_timeout=30, retry_pause=0.1,
                                          health_interval=None)
            stop = asyncio.Event()
            task = asyncio.create_task(connector.run(stop))
            for _ in range(100):  # poll (not sleep-as-sync): until the update is produced
                if producer.sent:
                    break
                await asyncio.sleep(0.05)
            assert [key for key, _ in producer.sent] == [PAGE]
            # the connector is now inside a 30 s long poll; stopping must not wait for it
            loop = asyncio.get_running_loop()
            started = loop.time()
            stop.set()
            await asyncio.wait_for(task, 5)
            assert loop.time() - started < 2
    text = _exposition(metrics)
    failed = metric_samples(text, "dozor_ingest_last_failure_timestamp_seconds")
    ok = metric_samples(text, "dozor_ingest_last_success_timestamp_seconds")
    assert failed[(("page_id", PAGE),)] > 0 and ok[(("page_id", PAGE),)] >= failed[
        (("page_id", PAGE),)]
    assert cursors.commits == [("telegram:offset:7000001", 500_002)]


def test_the_bot_token_may_come_from_the_secrets_file(tmp_path, capsys):
    """Unset setting, token in DOZOR_SECRETS_FILE: the connector goes on (here to the missing
    Kafka bootstrap) instead of saying that no token is set."""
    import argparse

    from services.ingest.telegram import run

    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(f"DOZOR_TELEGRAM_BOT_TOKEN: '{TOKEN}'\n", encoding="utf-8")
    settings = Settings(telegram_bot_token=None, secrets_file=secrets, kafka_bootstrap=None)
    assert run(settings, argparse.Namespace(once=True)) == 2
    out = capsys.readouterr()
    assert "DOZOR_KAFKA_BOOTSTRAP" in out.err and "не запущен" not in out.out
    assert TOKEN not in out.out + out.err
    empty = Settings(telegram_bot_token=None, secrets_file=None, kafka_bootstrap=None)
    assert run(empty, argparse.Namespace(once=True)) == 0
    assert capsys.readouterr().out.strip() == NO_TOKEN_MESSAGE.strip()
    with pytest.raises(ValueError):
        Settings(telegram_health_interval_seconds=0)
    assert Settings().telegram_health_interval_seconds == 600
