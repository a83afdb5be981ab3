"""The moderation consumer against a real broker (embedded Tansu or DOZOR_TEST_KAFKA_BOOTSTRAP)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import text

from services.moderation.consumer import ConsumerConfig, ModerationConsumer, split_batch
from streams.ticks import TICK_KEY, tick_message
from services.moderation.db import make_engine
from services.moderation.migrations import upgrade
from services.moderation.store import ItemFilter, ModerationStore
from streams.topics import ensure_topics
from tests.support.moderation import START, moderation_env, start_moderation
from tests.support.observe import wait_for


# Offsets past the newest record written, per (topic, partition), from the producers'
# acknowledgements (Tansu's ListOffsets answers per record batch, not per record).
ENDS: dict[tuple[str, int], int] = {}


async def produce(bootstrap: str, topic: str, values: list, key: str = "vk:-170001") -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = []
        for value in values:
            raw = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
            futures.append(await producer.send(topic, raw, key=key.encode()))
        for meta in await asyncio.gather(*futures):
            ENDS[(topic, meta.partition)] = max(ENDS.get((topic, meta.partition), 0), meta.offset + 1)
    finally:
        await producer.stop()


async def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int | None]:
    """Where a consumer that read everything produced here has committed to (None: nothing)."""
    return {p: ENDS.get((topic, p)) for p in range(partitions)}


def topics(prefix: str) -> ConsumerConfig:
    return ConsumerConfig(
        bootstrap="", group=f"{prefix}-moderation", topic_flags=f"{prefix}.flags",
        topic_updates=f"{prefix}.flag-updates", topic_events=f"{prefix}.events",
        session_timeout=3.0, heartbeat=0.5,
    )


async def consume_until(store: ModerationStore, config: ConsumerConfig, until, timeout: float = 60.0,
                        **kwargs) -> ModerationConsumer:
    """Run the consumer until ``until()`` is true (polled), then stop it gracefully."""
    consumer = ModerationConsumer(store, config, **kwargs)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not await asyncio.to_thread(until):
            if task.done():
                task.result()
                raise AssertionError("consumer stopped")
            if loop.time() > deadline:
                raise AssertionError("timed out waiting for the consumer")
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return consumer


def update(flag: dict, kind: str, n: int = 1, **fields) -> dict:
    record = {"flag_id": flag["flag_id"], "kind": kind, "page_id": flag["page_id"],
              "item_id": flag["item_id"], "at": START + n,
              "update_id": f"{flag['flag_id']}-{kind}-{n}", "link": None, "text": None,
              "scores": None, "details": {}}
    record.update(fields)
    return record


def test_split_batch_skips_what_is_not_a_record():
    config = topics("x")

    class Msg:
        def __init__(self, value, offset=0, key=None):
            self.value, self.offset, self.key = value, offset, key

    batch = split_batch(config, {
        TopicPartition("x.flags", 0): [Msg(b"{not json"), Msg(b"[1, 2]"), Msg(b'{"flag_id": "a"}')],
        TopicPartition("x.flag-updates", 0): [Msg(b'{"update_id": "u", "flag_id": "f", "kind": "boom"}')],
        TopicPartition("x.events", 1): [Msg("\udcff".encode("utf-8", "surrogatepass"))],
    })
    assert batch.flags == batch.updates == batch.events == []
    assert batch.invalid == {"x.flags": 3, "x.flag-updates": 1, "x.events": 1}


def test_split_batch_passes_over_the_workers_clock_ticks_silently():
    class Msg:
        def __init__(self, value, key):
            self.value, self.offset, self.key = value, 0, key

    batch = split_batch(topics("x"), {
        TopicPartition("x.events", 0): [Msg(tick_message(1.0e9), TICK_KEY)],
    })
    assert batch.events == [] and batch.invalid == {}


@pytest.mark.broker
@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
async def test_replaying_the_same_flags_twice_yields_each_item_once(
        kafka_bootstrap, fresh_database, make_flag, dialect):
    url = fresh_database(dialect)
    upgrade(url)
    store = ModerationStore(make_engine(url))
    prefix = f"m{uuid.uuid4().hex[:8]}"
    config = topics(prefix)
    config = ConsumerConfig(**{**config.__dict__, "bootstrap": kafka_bootstrap})
    await ensure_topics(kafka_bootstrap, [config.topic_flags, config.topic_updates,
                                          config.topic_events], 2)
    flags = [make_flag(created_at=START + i) for i in range(40)]
    question = make_flag("unanswered_question")
    await produce(kafka_bootstrap, config.topic_flags, flags[:20], key="vk:-1")
    await produce(kafka_bootstrap, config.topic_flags, flags[20:] + [question], key="vk:-2")
    # the answer arrives on its own topic; it may be read before or after its flag
    await produce(kafka_bootstrap, config.topic_updates,
                  [update(question, "answered", link="https://vk.com/answer"), b"\xff not json"])
    await produce(kafka_bootstrap, config.topic_events,
                  [{"event_id": "e1", "platform": "vk", "kind": "post", "action": "new",
                    "page_id": "vk:-170001", "item_id": "100", "thread_id": "100",
                    "parent_id": None, "reply_to_user": None, "author_id": "-170001",
                    "by_page": True, "text": "Пост", "created_at": START, "url": "u"}])
    operator = store.add_user("op", "operator", "пароль-оператора")
    invalid: list[tuple[str, int]] = []

    def done() -> bool:
        page = store.list_items(operator, ItemFilter(), limit=1)
        return page.total == 41 and page.counts["status"].get("resolved") == 1

    # the events are of the fixed day START: with the wall clock the consumer's pruning
    # (thread retention, 30 days) would delete them once START is a month past
    await consume_until(store, config, done, on_invalid=lambda t, n: invalid.append((t, n)),
                        clock=lambda: START)
    assert invalid == [(config.topic_updates, 1)]
    # offsets committed after the rows: up to the end of every partition
    ends = await end_offsets(kafka_bootstrap, config.topic_flags, 2)
    assert await committed(kafka_bootstrap, config.group, config.topic_flags, 2) == ends

    # the same flags and update again, and a second consumer group reading everything twice
    await produce(kafka_bootstrap, config.topic_flags, flags + [question], key="vk:-1")
    await produce(kafka_bootstrap, config.topic_updates, [update(question, "answered", link="x")])
    replay = ConsumerConfig(**{**config.__dict__, "group": config.group + "-replay"})
    ends = await end_offsets(kafka_bootstrap, config.topic_flags, 2)
    batches = []
    await consume_until(
        store, replay,
        lambda: asyncio.run(committed(kafka_bootstrap, replay.group, replay.topic_flags, 2)) == ends,
        on_batch=batches.append, clock=lambda: START)
    assert sum(b.flags_new for b in batches) == 0
    assert sum(sum(b.updates_applied.values()) for b in batches) == 0
    page = store.list_items(operator, ItemFilter(), limit=100)
    assert page.total == 41
    assert len({i.flag_id for i in page.items}) == 41
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'flagged'")).scalar() == 41
        assert conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'auto_close'")).scalar() == 1
    closed = store.get_item(operator, question["flag_id"])
    assert (closed.resolution, closed.answer_link) == ("answered_by_page", "https://vk.com/answer")
    assert [e.item_id for e in store.thread(closed)] == ["100"]
    store.engine.dispose()


# ------------------------------------------------------------------ SIGKILL of `dozor moderation`


@pytest.mark.broker
@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
async def test_sigkill_between_row_commit_and_offset_commit_loses_and_repeats_nothing(
        kafka_bootstrap, fresh_database, make_flag, tmp_path, dialect):
    """On PostgreSQL and on SQLite, the embedded default (a killed writer leaves its
    journal; the next open must roll it back or forward, never half a batch)."""
    url = fresh_database(dialect)
    prefix = f"k{uuid.uuid4().hex[:8]}"
    flags_topic, group = f"{prefix}.flags", f"{prefix}-moderation"
    await ensure_topics(kafka_bootstrap, [flags_topic, f"{prefix}.flag-updates", f"{prefix}.events"], 2)
    first = [make_flag(created_at=START + i) for i in range(60)]
    question = make_flag("unanswered_question")
    await produce(kafka_bootstrap, flags_topic, first[:30] + [question], key="vk:-1")
    await produce(kafka_bootstrap, flags_topic, first[30:], key="vk:-2")
    log_path = tmp_path / "moderation.log"

    # 1. offsets are committed at most once an hour: the rows are committed, the offsets not
    proc = start_moderation(moderation_env(kafka_bootstrap, url, prefix, tmp_path,
                                           DOZOR_MODERATION_COMMIT_INTERVAL_SECONDS="3600"), log_path)
    engine = make_engine(url)

    def count(sql: str) -> int:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()

    try:
        wait_for(lambda: _alive(proc, log_path) and count("SELECT count(*) FROM items") == 61
                 if _has_schema(engine) else False, timeout=90, message=f"61 items ({log_path})")
        # every row is committed and no offset is: the kill lands between the two
        assert await committed(kafka_bootstrap, group, flags_topic, 2) == {0: None, 1: None}
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    # 2. more flags (and repeats, and the page's answer) while it is down; then a restart
    second = [make_flag(created_at=START + 100 + i) for i in range(40)]
    await produce(kafka_bootstrap, flags_topic, second + first[:10], key="vk:-3")
    await produce(kafka_bootstrap, f"{prefix}.flag-updates",
                  [update(question, "answered", link="https://vk.com/answer")], key="vk:-1")
    proc = start_moderation(moderation_env(kafka_bootstrap, url, prefix, tmp_path), log_path)
    try:
        ends = await end_offsets(kafka_bootstrap, flags_topic, 2)
        wait_for(lambda: _alive(proc, log_path) and count("SELECT count(*) FROM items") == 101
                 and count("SELECT count(*) FROM items WHERE status = 'resolved'") == 1,
                 timeout=90, message=f"101 items and the answered question ({log_path})")

        async def all_committed():
            return await committed(kafka_bootstrap, group, flags_topic, 2) == ends

        deadline = asyncio.get_running_loop().time() + 60
        while not await all_committed():
            assert asyncio.get_running_loop().time() < deadline, "offsets never committed"
            await asyncio.sleep(0.25)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, log_path.read_text(errors="replace")[-3000:]

    expected = {f["flag_id"] for f in first + second + [question]}
    with engine.connect() as conn:
        stored = [r[0] for r in conn.execute(text("SELECT flag_id FROM items"))]
        flagged = [r[0] for r in conn.execute(text("SELECT flag_id FROM audit_log WHERE action = 'flagged'"))]
        closes = conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'auto_close'")).scalar()
    engine.dispose()
    assert sorted(stored) == sorted(expected)  # nothing lost, nothing twice
    assert sorted(flagged) == sorted(expected)  # and each item flagged once in the audit log
    assert closes == 1


def _has_schema(engine) -> bool:
    from sqlalchemy import inspect

    try:
        return "items" in inspect(engine).get_table_names()
    except Exception:
        return False


def _alive(proc: subprocess.Popen, log_path: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"dozor moderation exited {proc.returncode}:\n"
                             + log_path.read_text(errors="replace")[-3000:])
    return True


class _Msg:
    def __init__(self, value, offset):
        self.value, self.offset = value, offset


async def test_a_record_the_database_refuses_is_skipped_and_the_rest_stored(pg_store, make_flag):
    """A NUL inside the details' JSON (PostgreSQL jsonb refuses it) must not block the
    partition: the batch is stored record by record, the refused one counted and skipped.
    A NUL in the text is simply removed."""
    config = topics("p")
    good = [make_flag() for _ in range(3)]
    nul_text = make_flag(text_="плохой\x00текст")
    poison = make_flag(details={"note": "nul \x00 inside"})
    values = [json.dumps(r).encode() for r in good[:2] + [poison, nul_text, good[2]]]
    records = {TopicPartition("p.flags", 0): [_Msg(v, i) for i, v in enumerate(values)]}
    invalid, batches = [], []
    consumer = ModerationConsumer(pg_store, config, on_batch=batches.append,
                                  on_invalid=lambda t, n: invalid.append((t, n)))
    await consumer._store_batch(records)
    assert invalid == [("p.flags", 1)]
    assert batches[0].flags_new == 4
    assert consumer._stored == {TopicPartition("p.flags", 0): 5}  # the partition moves on
    operator = pg_store.add_user("op", "operator", "пароль-оператора")
    stored = {i.flag_id: i for i in pg_store.list_items(operator, limit=10).items}
    assert set(stored) == {f["flag_id"] for f in good + [nul_text]}
    assert stored[nul_text["flag_id"]].text == "плохойтекст"


@pytest.mark.broker
async def test_a_batch_the_database_could_not_take_is_read_again(
        kafka_bootstrap, sqlite_store, make_flag):
    """The database is away for two tries: nothing is committed past the batch, the batch
    is read again from its first offset and stored once."""
    from sqlalchemy.exc import OperationalError

    prefix = f"r{uuid.uuid4().hex[:8]}"
    config = ConsumerConfig(**{**topics(prefix).__dict__, "bootstrap": kafka_bootstrap,
                               "retry_max_seconds": 0.2})
    await ensure_topics(kafka_bootstrap, [config.topic_flags, config.topic_updates, config.topic_events], 1)
    flags = [make_flag() for _ in range(10)]
    await produce(kafka_bootstrap, config.topic_flags, flags)
    real_ingest, calls = sqlite_store.ingest, []

    def flaky_ingest(*args):
        calls.append(len(args[0]))
        if len(calls) <= 2:
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        return real_ingest(*args)

    sqlite_store.ingest = flaky_ingest
    operator = sqlite_store.add_user("op", "operator", "пароль-оператора")
    await consume_until(sqlite_store, config,
                        lambda: sqlite_store.list_items(operator, limit=1).total == 10)
    assert calls[:3] == [10, 10, 10]  # the same batch, whole, three times
    assert await committed(kafka_bootstrap, config.group, config.topic_flags, 1) == {0: 10}
    assert sqlite_store.list_items(operator, limit=20).total == 10
