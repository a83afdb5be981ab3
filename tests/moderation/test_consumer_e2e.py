"""Through real topics: the worker flags a question, `dozor moderation` shows it, the page then
answers it, and the item closes by itself («отвечено страницей», with the answer's link)."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import urllib.error
import urllib.request
import uuid

import pytest

from services.broker import free_port
from services.moderation.db import make_engine
from services.moderation.store import ItemFilter, ModerationStore
from services.replay import advance_clock
from tests.support.checkpoints import build_oracle_checkpoint
from tests.support.kafka import produce
from tests.support.moderation import moderation_env, start_moderation
from tests.support.observe import metric_samples, wait_for
from tests.support.vk_connector import vk_comment
from tests.support.worker import WorkerProcess, worker_environment

pytestmark = pytest.mark.broker

VK_OWNER = -2100001
VK_PAGE = f"vk:{VK_OWNER}"
T0 = 1795593600  # 2026-11-25 08:00 UTC
QUESTION = "Когда починят дорогу?"
ANSWER = "Починим в мае."


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_oracle_checkpoint(tmp_path_factory.mktemp("e2e") / "m", {
        QUESTION: {"question": 0.95, "negative": 0.02, "toxic": 0.02},
        ANSWER: {"question": 0.02, "negative": 0.02, "toxic": 0.02},
    })


def test_the_worker_flags_the_queue_shows_the_page_answers_the_item_closes(
        kafka_bootstrap, model, fresh_database, tmp_path):
    prefix = f"e{uuid.uuid4().hex[:8]}"
    pages = tmp_path / "pages.yaml"
    pages.write_text(
        "pages:\n"
        f"  - {{page_id: '{VK_PAGE}', name: Школа №1, municipality: Заречный, category: школа,"
        " answer_deadline_hours: 1, deadline_mode: plain}\n", encoding="utf-8")
    port = free_port()
    env = worker_environment(kafka_bootstrap, model, tmp_path / "data", prefix, port)
    env.update(DOZOR_PAGES_FILE=str(pages), DOZOR_CLOCK_IDLE_SECONDS="1000000000",
               DOZOR_FLAG_NEGATIVE_THRESHOLD="1.01")
    url = fresh_database("postgresql")
    log_path = tmp_path / "moderation.log"
    mod_env = moderation_env(kafka_bootstrap, url, prefix, tmp_path, DOZOR_TOPIC_PARTITIONS="4")
    moderation = start_moderation(mod_env, log_path)
    worker = WorkerProcess(env=env, log_path=tmp_path / "worker.log", metrics_port=port).start()
    store = None
    try:
        produce(kafka_bootstrap, f"{prefix}.raw.vk", str(-VK_OWNER), [vk_comment(VK_OWNER, 11, T0, QUESTION, 610001)])
        wait_for(lambda: sum(metric_samples(worker.metrics(), "dozor_events_total").values()) >= 1,
                 timeout=90, message="the question read by the worker")
        asyncio.run(advance_clock(kafka_bootstrap, f"{prefix}.clock", T0 + 2 * 3600))

        wait_for(lambda: _schema(url), timeout=60, message=f"the migrated store ({log_path})")
        store = ModerationStore(make_engine(url))
        viewer = store.add_user("zar", "municipal", "пароль-заречного", municipalities=["Заречный"])
        other = store.add_user("ukhta", "municipal", "пароль-ухты", municipalities=["Ухта"])

        def shown():
            _alive(moderation, log_path)
            return store.list_items(viewer, ItemFilter()).items

        [item] = wait_for(shown, timeout=90, message=f"the flag in the queue ({log_path})")
        assert (item.reason, item.page_id, item.text, item.status) == (
            "unanswered_question", VK_PAGE, QUESTION, "new")
        assert item.municipality == "Заречный" and item.page_name == "Школа №1"
        assert item.deadline_at == T0 + 3600 and item.overdue
        assert store.get_item(other, item.flag_id) is None
        assert [e.item_id for e in store.thread(item)] == ["11"]  # from the events topic

        produce(kafka_bootstrap, f"{prefix}.raw.vk", str(-VK_OWNER),
                [vk_comment(VK_OWNER, 12, T0 + 3 * 3600, ANSWER, VK_OWNER, reply_to=11, reply_to_user=610001)])

        def closed():
            _alive(moderation, log_path)
            now = store.get_item(viewer, item.flag_id)
            return now if now.status == "resolved" else None

        done = wait_for(closed, timeout=90, message=f"the item closed by the answer ({log_path})")
        assert done.resolution == "answered_by_page"
        assert done.answer_link == f"https://vk.com/wall{VK_OWNER}_501?reply=12"
        last = store.history(item.flag_id)[-1]
        assert (last.action, last.actor_name, last.actor_id) == ("auto_close", "система", None)
        assert last.note.startswith("отвечено страницей")
        wait_for(lambda: [e.item_id for e in store.thread(done)] == ["11", "12"], timeout=30,
                 message="the answer in the thread")
        assert store.list_items(viewer, ItemFilter(status="open")).total == 0

        # the queue figures are served on the metrics port, never on the public UI port
        announced = wait_for(lambda: re.search(r"metrics at (http://\S+/metrics)",
                                               log_path.read_text(errors="replace")),
                             timeout=30, message="the announced metrics URL")
        with urllib.request.urlopen(announced[1], timeout=10) as response:
            scraped = response.read().decode()
        assert re.search(r'dozor_moderation_items\{[^}]*municipality="Заречный"', scraped)
        ui = f"http://127.0.0.1:{mod_env['DOZOR_MODERATION_PORT']}"
        with urllib.request.urlopen(f"{ui}/healthz", timeout=10) as response:
            assert response.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{ui}/metrics", timeout=10)
        assert refused.value.code == 404
    finally:
        worker.stop()
        moderation.send_signal(signal.SIGTERM)
        try:
            moderation.wait(timeout=30)
        except subprocess.TimeoutExpired:
            moderation.kill()
            moderation.wait()
        if store is not None:
            store.engine.dispose()
    assert moderation.returncode == 0, log_path.read_text(errors="replace")[-3000:]


def _schema(url: str) -> bool:
    from sqlalchemy import inspect

    engine = make_engine(url)
    try:
        return "users" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _alive(proc, log_path) -> None:
    if proc.poll() is not None:
        raise AssertionError(f"dozor moderation exited {proc.returncode}:\n"
                             + log_path.read_text(errors="replace")[-3000:])
