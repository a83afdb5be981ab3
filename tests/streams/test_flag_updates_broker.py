"""Flag updates and Telegram pages through a real broker and `dozor worker`.

One worker, one VK page and one Telegram channel (1-hour plain deadlines), an oracle model:

* VK: a question is flagged overdue (a forced clock tick, as `dozor replay --advance-clock-to`
  sends), then the page answers it → exactly one "answered" update on the flag-updates
  topic, with the answer's link (contract A, docs/ARCHITECTURE.md).
* Telegram (raw topic `dozor.raw.telegram`, normalised by the worker): a question the channel
  answers in time closes without a flag, an unanswered one is flagged once; a service message
  is ignored and counted, a malformed update is dead-lettered as platform "telegram".
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from services.broker import free_port
from services.replay import advance_clock
from tests.support import telegram_payloads as tg
from tests.support.checkpoints import build_oracle_checkpoint
from tests.support.kafka import consume_json, produce
from tests.support.observe import metric_samples, wait_for
from tests.support.vk_connector import vk_comment
from tests.support.worker import WorkerProcess, worker_environment

pytestmark = pytest.mark.broker

VK_OWNER = -2100001
VK_PAGE = f"vk:{VK_OWNER}"
TG_PAGE = f"telegram:{tg.CHANNEL_ID}"
T0 = tg.BASE_DATE  # 2026-11-25 08:00 UTC
QUESTION = "Когда починят дорогу?"
TG_ANSWERED = "Когда откроют каток?"
TG_UNANSWERED = "Где взять справку?"
ANSWER = "Починим в мае."


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    question = {"question": 0.95, "negative": 0.02, "toxic": 0.02}
    return build_oracle_checkpoint(tmp_path_factory.mktemp("updates") / "m", {
        QUESTION: question, TG_ANSWERED: question, TG_UNANSWERED: question,
        ANSWER: {"question": 0.02, "negative": 0.02, "toxic": 0.02},
    })


def test_a_late_answer_updates_the_flag_and_telegram_pages_are_tracked(
        kafka_bootstrap, model, tmp_path):
    prefix = f"u{uuid.uuid4().hex[:8]}"
    pages = tmp_path / "pages.yaml"
    pages.write_text(
        "pages:\n"
        f"  - {{page_id: '{VK_PAGE}', name: Школа, municipality: Заречный, category: школа,"
        " answer_deadline_hours: 1, deadline_mode: plain}\n"
        f"  - {{page_id: '{TG_PAGE}', name: Администрация, municipality: Заречный,"
        " category: администрация, answer_deadline_hours: 1, deadline_mode: plain,"
        f" connector: telegram, telegram_discussion_id: {tg.GROUP_ID}}}\n",
        encoding="utf-8",
    )
    port = free_port()
    env = worker_environment(kafka_bootstrap, model, tmp_path / "data", prefix, port)
    env.update(DOZOR_PAGES_FILE=str(pages), DOZOR_CLOCK_IDLE_SECONDS="1000000000",
               DOZOR_FLAG_NEGATIVE_THRESHOLD="1.01")
    worker = WorkerProcess(env=env, log_path=tmp_path / "worker.log", metrics_port=port).start()
    try:
        root = tg.automatic_forward(900, 41, "Каток и справки")
        tg_question = tg.comment(901, TG_ANSWERED, root=root, date=T0 + 60)
        telegram = [
            tg.channel_post(41, "Каток и справки", date=T0),
            root,
            tg_question,
            tg.comment(902, TG_UNANSWERED, root=root, date=T0 + 120),
            tg.comment(903, "Каток откроют в субботу.", root=root, reply_to=tg_question,
                       sender_chat=tg.channel_chat(), date=T0 + 600),
            tg.member_joined(904),
        ]
        produce(kafka_bootstrap, f"{prefix}.raw.telegram", TG_PAGE,
                [json.dumps(u, ensure_ascii=False).encode() for u in telegram] + [b"{broken"])
        produce(kafka_bootstrap, f"{prefix}.raw.vk", str(-VK_OWNER),
                [vk_comment(VK_OWNER, 11, T0, QUESTION, 610001)])

        def events_seen():
            samples = metric_samples(worker.metrics(), "dozor_events_total")
            return sum(samples.values()) >= 5  # the VK question, the post and three comments

        wait_for(events_seen, timeout=90, message="the events of both platforms")
        asyncio.run(advance_clock(kafka_bootstrap, f"{prefix}.clock", T0 + 2 * 3600))
        flags = consume_json(
            kafka_bootstrap, f"{prefix}.flags",
            until=lambda objs: sum(o["reason"] == "unanswered_question" for o in objs) >= 2,
            timeout=90,
        )
        overdue = sorted((f["page_id"], f["text"]) for f in flags
                         if f["reason"] == "unanswered_question")
        assert overdue == [(TG_PAGE, TG_UNANSWERED), (VK_PAGE, QUESTION)], flags
        vk_flag = next(f for f in flags if f["page_id"] == VK_PAGE)

        answer = vk_comment(VK_OWNER, 12, T0 + 3 * 3600, ANSWER, VK_OWNER, reply_to=11,
                            reply_to_user=610001)
        produce(kafka_bootstrap, f"{prefix}.raw.vk", str(-VK_OWNER), [answer])

        def answered_late():
            samples = metric_samples(worker.metrics(), "dozor_questions_total")
            return samples.get((("outcome", "answered_late"), ("page_id", VK_PAGE)), 0) >= 1

        wait_for(answered_late, timeout=90, message="the late answer applied and stored")
        updates = consume_json(kafka_bootstrap, f"{prefix}.flag-updates",
                               until=lambda objs: len(objs) >= 2, timeout=5)
        assert len(updates) == 1, updates
        [update] = updates
        assert update["kind"] == "answered" and update["flag_id"] == vk_flag["flag_id"]
        assert update["item_id"] == "11" and update["at"] == T0 + 3 * 3600
        assert update["link"] == f"https://vk.com/wall{VK_OWNER}_501?reply=12"
        assert update["text"] == ANSWER and len(update["update_id"]) == 40

        text = worker.metrics()
        assert metric_samples(text, "dozor_flag_updates_total")[(("kind", "answered"),)] == 1
        assert metric_samples(text, "dozor_ignored_updates_total")[
            (("platform", "telegram"),)] >= 2  # the automatic forward and the service message
        questions = metric_samples(text, "dozor_questions_total")
        assert questions[(("outcome", "answered_in_time"), ("page_id", TG_PAGE))] == 1
        every_flag = consume_json(kafka_bootstrap, f"{prefix}.flags", timeout=3)
        assert sorted(f["item_id"] for f in every_flag) == sorted(f["item_id"] for f in flags), (
            "a flag was sent twice, or for the question answered in time")
        dead = consume_json(kafka_bootstrap, f"{prefix}.dead-letters",
                            until=lambda objs: len(objs) >= 1, timeout=30)
        assert [(d["platform"], d["reason"], d["payload_text"]) for d in dead] == [
            ("telegram", "invalid_json", "{broken")]
    finally:
        worker.stop()
