"""A Telegram page end to end on the test broker: fake Bot API → connector → worker → flags.

Issue 17's acceptance: a question on a Telegram page answered by the channel closes without a
flag, and an unanswered one is flagged once. The connector (`dozor ingest telegram`, one
short-poll round) reads the fake Bot API and produces the raw updates; `dozor worker`
(subprocess, oracle checkpoint: the question texts score 0.95 for `question`, everything else
~0) normalises them with streams/normalize/telegram.py and tracks answers. The page's deadline
is 1 wall-clock hour (deadline_mode plain); the stream clock follows event time only and is
advanced with forced ticks, as `dozor replay --advance-clock-to` does.

"Flagged once" is checked with an ordering barrier instead of a sleep: a third question is
asked after the first deadline and flagged after a second clock advance; the page's events
and flags are keyed by page (one partition each), so by the time the barrier's flag is out,
any repeated flag of the unanswered question would be out too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.ingest.metrics import IngestMetrics
from services.ingest.telegram import run_connector
from services.replay import advance_clock
from services.settings import Settings
from tests.support import telegram_payloads as tg
from tests.support.checkpoints import build_oracle_checkpoint
from tests.support.fake_telegram import FakeTelegram
from tests.support.kafka import consume_json
from tests.support.observe import metric_samples, wait_for

pytestmark = pytest.mark.broker

TOKEN = "7000002:AAFakeTokenForTheWorkerTest"
PAGE = f"telegram:{tg.CHANNEL_ID}"
HOUR = 3600
T0 = tg.BASE_DATE
ANSWERED = "Когда откроют новую поликлинику на Южной?"
UNANSWERED = "Почему не вывозят мусор во дворе на Мира 5?"
BARRIER = "Когда починят фонари на Садовой улице?"
ANSWER = "Поликлинику откроют 1 декабря, запись уже идёт"


@pytest.fixture(scope="module")
def question_model(tmp_path_factory) -> Path:
    answers = {text: {"question": 0.95, "negative": 0.02, "toxic": 0.01}
               for text in (ANSWERED, UNANSWERED, BARRIER)}
    return build_oracle_checkpoint(tmp_path_factory.mktemp("tg-oracle") / "m", answers)


def pages_file(tmp_path: Path) -> Path:
    path = tmp_path / "pages.yaml"
    path.write_text(tg.registry_yaml(platform="telegram", category="администрация",
                                     answer_deadline_hours=1, deadline_mode="plain"),
                    encoding="utf-8")
    return path


def first_hour() -> list[dict]:
    """The post, its thread, two questions; the channel answers the first within minutes."""
    ids = iter(range(600_001, 600_100))
    post = tg.channel_post(50, "Открываем новую поликлинику", date=T0, update_id=next(ids))
    root = tg.automatic_forward(410, 50, "Открываем новую поликлинику", date=T0,
                                update_id=next(ids))
    answered = tg.comment(411, ANSWERED, root=root, date=T0 + 60, update_id=next(ids),
                          author=tg.user(5200001, "Анна", None))
    unanswered = tg.comment(412, UNANSWERED, root=root, date=T0 + 120, update_id=next(ids),
                            author=tg.user(5200002, "Борис", None))
    answer = tg.comment(413, ANSWER, root=root, reply_to=answered, date=T0 + 600,
                        sender_chat=tg.channel_chat(), update_id=next(ids))
    # a broken update (no `date`) of the page's group: the worker dead-letters it
    broken = tg.group_chatter(415, "без даты", update_id=next(ids))
    del broken["message"]["date"]
    return [post, root, answered, unanswered, answer, broken]


def later(root: dict) -> list[dict]:
    """A third question, asked after the first one's deadline (the barrier)."""
    return [tg.comment(414, BARRIER, root=root, date=T0 + 2 * HOUR, update_id=600_050,
                       author=tg.user(5200003, "Вера", None))]


def test_answered_question_closes_without_a_flag_and_unanswered_is_flagged_once(
    kafka_bootstrap, worker_factory, question_model, tmp_path
):
    pages = pages_file(tmp_path)
    worker = worker_factory(env={
        "DOZOR_MODEL": str(question_model),
        "DOZOR_PAGES_FILE": str(pages),
        "DOZOR_CLOCK_IDLE_SECONDS": "1000000000",
        "DOZOR_FLAG_NEGATIVE_THRESHOLD": "1.01",
    })
    prefix = worker.env["DOZOR_APP_ID"]
    clock_topic, flags_topic = f"{prefix}.clock", f"{prefix}.flags"
    updates = first_hour()

    with FakeTelegram(token=TOKEN) as fake:
        settings = Settings(
            kafka_bootstrap=kafka_bootstrap, telegram_bot_token=TOKEN,
            telegram_api_url=fake.url, topic_raw_telegram=f"{prefix}.raw.telegram",
            topic_ingest_cursors=f"{prefix}.ingest-cursors", pages_file=pages,
            ingest_metrics_port=0,
        )
        fake.add_chat(tg.channel_chat(), linked_chat_id=tg.GROUP_ID)
        for upd in updates:
            fake.add_update(upd)
        first = asyncio.run(run_connector(settings, IngestMetrics(), once=True))
        assert first.produced == 6

        # post + 3 comments are events (the automatic forward is not); the answer is in
        def telegram_events(n):
            return lambda: sum(v for k, v in metric_samples(
                worker.metrics(), "dozor_events_total").items()
                if dict(k)["platform"] == "telegram") >= n
        wait_for(telegram_events(4), timeout=90, message="4 Telegram events in the worker")
        text = worker.metrics()
        questions = metric_samples(text, "dozor_questions_total")
        in_time = (("outcome", "answered_in_time"), ("page_id", PAGE))
        assert questions.get(in_time) == 1, questions

        # the first hour is over: the unanswered question becomes overdue
        asyncio.run(advance_clock(kafka_bootstrap, clock_topic, T0 + 2 * HOUR - 60))
        for upd in later(updates[1]):
            fake.add_update(upd)
        assert asyncio.run(run_connector(settings, IngestMetrics(), once=True)).produced == 1
    wait_for(telegram_events(5), timeout=60, message="the barrier question in the worker")
    asyncio.run(advance_clock(kafka_bootstrap, clock_topic, T0 + 4 * HOUR))

    flags = consume_json(
        kafka_bootstrap, flags_topic,
        until=lambda objs: any(o["item_id"] == "414" for o in objs), timeout=90,
    )
    unanswered = [(f["page_id"], f["item_id"], f["reason"]) for f in flags
                  if f["reason"] == "unanswered_question"]
    assert sorted(unanswered) == [(PAGE, "412", "unanswered_question"),
                                  (PAGE, "414", "unanswered_question")], flags
    assert not any(f["item_id"] == "411" for f in flags)  # answered by the channel: no flag
    flag = next(f for f in flags if f["item_id"] == "412")
    assert flag["text"] == UNANSWERED
    assert flag["link"] == f"https://t.me/{tg.CHANNEL_USERNAME}/50?comment=412"
    metrics = worker.metrics()
    assert metric_samples(metrics, "dozor_questions_total").get(
        (("outcome", "answered_in_time"), ("page_id", PAGE))) == 1
    dead_letters = metric_samples(metrics, "dozor_dead_letters_total")
    assert {k: v for k, v in dead_letters.items() if v} == {(("reason", "missing_field"),): 1.0}
    dead = consume_json(kafka_bootstrap, f"{prefix}.dead-letters", until=lambda o: o, timeout=30)
    assert len(dead) == 1 and "'date'" in dead[0]["detail"], dead
