"""«Модель ошиблась» → feedback rows → Kafka and the training CSV (round trip on a tiny model)."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from models.training.data import read_user_csv
from services.moderation.db import make_engine
from services.moderation.feedback import export_feedback, run_feedback_producer
from services.moderation.migrations import upgrade
from services.moderation.store import ModerationStore
from streams.topics import ensure_topics
from tests.support.kafka import consume_json

REPO = Path(__file__).resolve().parents[2]

CORRECTIONS = [
    # (text, labels the moderator gave)
    ("Когда починят дорогу на Советской", {"question": 1}),
    ("Где можно получить справку о составе семьи", {"question": 1}),
    ("Почему опять нет горячей воды во всём районе", {"question": 1, "negative": 1}),
    ("Безобразие, третий день не вывозят мусор", {"negative": 1}),
    ("Вы все бездельники и воры", {"toxic": 1, "negative": 1}),
    ("Спасибо за быстрый ремонт остановки", {}),
    ("Хорошая новость для нашего посёлка", {}),
    ("Сколько стоит проезд в автобусе теперь", {"question": 1}),
    ("Отвратительная работа коммунальщиков", {"negative": 1}),
    ("Идиоты, когда вы уже научитесь работать", {"toxic": 1, "question": 1}),
    ("Ремонт закончили в срок, молодцы", {}),
    ("Кто отвечает за освещение во дворах", {"question": 1}),
]


def fill(store: ModerationStore, make_flag, user) -> list[str]:
    flags = [make_flag(text_=text_) for text_, _ in CORRECTIONS]
    store.upsert_flags(flags)
    for flag, (_, labels) in zip(flags, CORRECTIONS):
        store.report_model_error(user, flag["flag_id"], labels)
    return [f["flag_id"] for f in flags]


def test_export_writes_the_csv_the_training_loader_reads(store, make_user, make_flag, tmp_path):
    user = make_user("operator")
    flag_ids = fill(store, make_flag, user)
    # a second correction of the first item replaces the first one
    store.report_model_error(user, flag_ids[0], {"question": 1, "negative": 1})
    out = tmp_path / "nested" / "feedback.csv"
    assert export_feedback(store, out) == len(CORRECTIONS)

    with out.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["text", "label", "unknown"]
    by_text = {r["text"]: r["label"] for r in rows}
    assert by_text["Когда починят дорогу на Советской"] == "question;negative"
    assert by_text["Вы все бездельники и воры"] == "negative;toxic"
    assert by_text["Спасибо за быстрый ремонт остановки"] == "none"

    examples = {e.text: e.targets for e in read_user_csv(out)}
    assert len(examples) == len(CORRECTIONS)
    # the form does not ask about "positive": a thank-you marked "none" leaves it unknown
    assert examples["Спасибо за быстрый ремонт остановки"] == {
        "question": 0, "negative": 0, "toxic": 0}
    assert examples["Безобразие, третий день не вывозят мусор"]["negative"] == 1
    assert examples["Вы все бездельники и воры"]["toxic"] == 1
    assert examples["Кто отвечает за освещение во дворах"]["question"] == 1


def test_export_feedback_command_then_model_train_on_it(
        fresh_database, make_flag, tiny_model_dir, tmp_path):
    """`dozor moderation export-feedback --out F` then `dozor model train --data F` (tiny model)."""
    url = fresh_database("sqlite")
    upgrade(url)
    store = ModerationStore(make_engine(url))
    user = store.add_user("anna", "operator", "пароль-анны")
    fill(store, make_flag, user)
    store.engine.dispose()

    env = {k: v for k, v in os.environ.items() if not k.startswith("DOZOR_")}
    env.update(DOZOR_DATABASE_URL=url, DOZOR_DATA_DIR=str(tmp_path / "data"))
    out = tmp_path / "feedback.csv"
    run = subprocess.run([sys.executable, "-m", "services.cli", "moderation", "export-feedback",
                          "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "12 строк" in run.stderr

    tuned = tmp_path / "tuned"
    run = subprocess.run([sys.executable, "-m", "services.cli", "model", "train", "--data", str(out),
                          "--base-model", str(tiny_model_dir), "--output", str(tuned),
                          "--epochs", "1", "--threads", "1"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    used = re.search(r"fine-tuned .* on (\d+) rows \((\d+) kept for thresholds\)", run.stdout)
    assert used and int(used[1]) + int(used[2]) == len(CORRECTIONS), run.stdout  # every row read

    from models.classifier import TextClassifier

    clf = TextClassifier.load(tuned)
    scores = clf.predict(["Когда починят дорогу"])
    assert set(scores[0]) == {"question", "negative", "toxic"}
    clf.close()


@pytest.mark.broker
async def test_feedback_is_produced_once_and_marked(kafka_bootstrap, fresh_database, make_flag):
    url = fresh_database("sqlite")
    upgrade(url)
    store = ModerationStore(make_engine(url))
    user = store.add_user("anna", "operator", "пароль-анны")
    flag_ids = fill(store, make_flag, user)[:3]
    topic = f"f{uuid.uuid4().hex[:8]}.feedback"
    await ensure_topics(kafka_bootstrap, [topic], 1)

    stop = asyncio.Event()
    produced: list[int] = []
    task = asyncio.create_task(run_feedback_producer(store, kafka_bootstrap, topic, stop,
                                                     interval=0.2, on_produced=produced.append))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while sum(produced) < len(CORRECTIONS):
        assert loop.time() < deadline and not task.done(), "feedback not produced"
        await asyncio.sleep(0.1)
    # a correction made while it runs is sent too
    store.report_model_error(user, flag_ids[0], {"toxic": 1})
    while sum(produced) < len(CORRECTIONS) + 1:
        assert loop.time() < deadline, "the new feedback was not produced"
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 30)
    assert store.unproduced_feedback() == []

    records = await asyncio.to_thread(
        consume_json, kafka_bootstrap, topic, lambda objs: len(objs) >= len(CORRECTIONS) + 1, 30)
    assert len(records) == len(CORRECTIONS) + 1  # each row once
    assert records[0]["text"] == CORRECTIONS[0][0]
    assert records[0]["labels"] == {"question": 1, "negative": 0, "toxic": 0}
    assert records[-1]["flag_id"] == flag_ids[0] and records[-1]["labels"]["toxic"] == 1
    assert json.dumps(records[-1], ensure_ascii=False)
    store.engine.dispose()
