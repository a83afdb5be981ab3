"""Flag ingest of the moderation store: batched (the consumer's code path) vs one row per transaction.

    .venv/bin/python bench/bench_moderation.py [--flags 20000] [--batch 1000] [--via-kafka]

Creates a fresh PostgreSQL database (``--postgres`` server URL, default the local
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``; dropped at the end) and a fresh
SQLite file, and stores synthetic flags (the records ``streams/flags.py`` sends, realistic
text lengths, 40 municipalities) in each way:

* ``batched``: ``ModerationStore.ingest`` with ``--batch`` flags per call — exactly what the
  consumer does with one ``getmany`` batch (one transaction: INSERT … ON CONFLICT DO NOTHING
  RETURNING, the "flagged" audit rows, pending updates);
* ``replay``: the same flags again (a redelivery), which must store nothing;
* ``naive``: ``upsert_flags([flag])`` per flag, one transaction each (on ``--naive-flags``
  flags, default 2,000, so that the run stays short);
* ``via Kafka`` (``--via-kafka``): the flags produced to a topic of an embedded Tansu broker
  (``services/broker.py``; or DOZOR_KAFKA_BOOTSTRAP), then consumed by ``ModerationConsumer``
  from a fresh group until every flag is stored — timed from the consumer's start (group
  join included) and from its first stored batch (steady state); producing is not timed.

Prints a markdown table and writes bench/results/moderation.json. The issue's bar: ≥ 2,000
flags/s into PostgreSQL, batched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from services.moderation.db import make_engine  # noqa: E402
from services.moderation.migrations import upgrade  # noqa: E402
from services.moderation.store import ModerationStore  # noqa: E402
from streams.flags import flag_id  # noqa: E402

REASONS = ["toxic", "strongly_negative", "unanswered_question", "negative_spike"]
WORDS = ("когда починят дорогу опять нет воды мусор не вывозят третий день администрация "
         "почему автобус не ходит безобразие сколько можно ждать ответа двор освещение").split()


def synthetic_flags(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    now = time.time()
    flags = []
    for i in range(n):
        municipality = f"Муниципалитет {rng.randrange(40)}"
        page_id = f"vk:-{170000 + rng.randrange(1670)}"
        item_id = str(seed * 10_000_000 + i)  # distinct across seeds: distinct flag ids
        reason = rng.choices(REASONS, weights=(5, 3, 4, 1))[0]
        created = now - rng.uniform(0, 7 * 86400)
        details = {}
        if reason == "unanswered_question":
            details = {"asked_at": created, "deadline_at": created + 8 * 3600, "age_seconds": 8 * 3600}
        words = rng.randint(5, 40)
        flags.append({
            "flag_id": flag_id(page_id, item_id, reason), "reason": reason, "page_id": page_id,
            "page_name": f"Администрация {municipality}", "municipality": municipality,
            "platform": "vk", "item_id": item_id, "thread_id": str(rng.randrange(10**6)),
            "author_id": str(rng.randrange(10**8)),
            "text": " ".join(rng.choice(WORDS) for _ in range(words)),
            "link": f"https://vk.com/wall{page_id[3:]}_1?reply={item_id}",
            "created_at": created, "flagged_at": created + (8 * 3600 if details else 0),
            "scores": {"question": rng.random(), "negative": rng.random(), "toxic": rng.random()},
            "details": details,
        })
    return flags


def create_pg_database(server: str) -> str:
    name = f"dozor_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(server: str, url: str) -> None:
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    engine.dispose()


def count_items(store: ModerationStore) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM items")).scalar()


def progress(row: dict) -> None:
    print(f"  {row['dialect']:10} {row['way']:40} {row['flags']:>7} flags {row['seconds']:8.2f} s",
          file=sys.stderr, flush=True)


def run_batched(store: ModerationStore, flags: list[dict], batch: int) -> tuple[float, int]:
    start = time.perf_counter()
    new = 0
    for i in range(0, len(flags), batch):
        new += store.ingest(flags[i:i + batch], [], []).flags_new
    return time.perf_counter() - start, new


def run_naive(store: ModerationStore, flags: list[dict]) -> tuple[float, int]:
    start = time.perf_counter()
    new = sum(store.upsert_flags([flag]) for flag in flags)
    return time.perf_counter() - start, new


async def run_via_kafka(store: ModerationStore, flags: list[dict], bootstrap: str,
                        batch: int) -> tuple[float, int]:
    from aiokafka import AIOKafkaProducer

    from services.moderation.consumer import ConsumerConfig, ModerationConsumer
    from streams.topics import ensure_topics

    prefix = f"bench{uuid.uuid4().hex[:6]}"
    config = ConsumerConfig(bootstrap=bootstrap, group=f"{prefix}-moderation",
                            topic_flags=f"{prefix}.flags", topic_updates=f"{prefix}.flag-updates",
                            topic_events=f"{prefix}.events", max_records=batch,
                            session_timeout=6.0, heartbeat=1.0)
    await ensure_topics(bootstrap, [config.topic_flags, config.topic_updates, config.topic_events], 4)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(config.topic_flags,
                                       json.dumps(f, ensure_ascii=False).encode(),
                                       key=f["page_id"].encode()) for f in flags]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    before = await asyncio.to_thread(count_items, store)
    stored: list[tuple[float, int]] = []  # (when, new flags) per stored batch
    consumer = ModerationConsumer(store, config,
                                  on_batch=lambda c: stored.append((time.perf_counter(), c.flags_new)))
    stop = asyncio.Event()
    start = time.perf_counter()
    task = asyncio.create_task(consumer.run(stop))
    while sum(n for _, n in stored) < len(flags):
        if task.done():
            task.result()
            raise RuntimeError("the consumer stopped")
        if time.perf_counter() - start > 300:
            raise RuntimeError(f"only {sum(n for _, n in stored)} of {len(flags)} flags stored in 300 s")
        await asyncio.sleep(0.02)
    end = time.perf_counter()
    stop.set()
    await task  # commits the stored offsets on the way out
    # steady state: from the first stored batch on (the group join, ~half the session timeout,
    # is not ingest)
    first_at, first_n = stored[0]
    steady = (len(flags) - first_n) / (end - first_at) if end > first_at else float("nan")
    return end - start, await asyncio.to_thread(count_items, store) - before, steady


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flags", type=int, default=20_000, help="flags per batched run")
    parser.add_argument("--naive-flags", type=int, default=2_000, help="flags of the naive run")
    parser.add_argument("--batch", type=int, default=1_000, help="flags per transaction (batched)")
    parser.add_argument("--postgres", default=os.environ.get(
        "DOZOR_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server URL; a fresh database is created and dropped there")
    parser.add_argument("--via-kafka", action="store_true",
                        help="also produce the flags to Kafka and time the consumer")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "moderation.json")
    args = parser.parse_args()

    pg_url = create_pg_database(args.postgres)
    tmp = tempfile.TemporaryDirectory()
    sqlite_url = f"sqlite:///{tmp.name}/moderation.sqlite3"
    rows = []
    broker = None
    try:
        for dialect, url in (("postgresql", pg_url), ("sqlite", sqlite_url)):
            make_engine(url).dispose()
            upgrade(url)
            store = ModerationStore(make_engine(url))
            flags = synthetic_flags(args.flags, seed=1)
            seconds, new = run_batched(store, flags, args.batch)
            assert new == len(flags), (new, len(flags))
            rows.append({"dialect": dialect, "way": f"batched ({args.batch}/transaction)",
                         "flags": len(flags), "seconds": seconds, "new_items": new})
            progress(rows[-1])
            seconds, new = run_batched(store, flags, args.batch)
            assert new == 0
            rows.append({"dialect": dialect, "way": "replay of the same flags (redelivery)",
                         "flags": len(flags), "seconds": seconds, "new_items": new})
            progress(rows[-1])
            naive = synthetic_flags(args.naive_flags, seed=2)
            seconds, new = run_naive(store, naive)
            assert new == len(naive)
            rows.append({"dialect": dialect, "way": "naive (1 flag/transaction)",
                         "flags": len(naive), "seconds": seconds, "new_items": new})
            progress(rows[-1])
            if args.via_kafka:
                bootstrap = os.environ.get("DOZOR_KAFKA_BOOTSTRAP")
                if not bootstrap:
                    if broker is None:
                        from services.broker import EmbeddedBroker

                        broker = EmbeddedBroker(log_path=Path(tmp.name) / "tansu.log").start()
                    bootstrap = broker.bootstrap
                via = synthetic_flags(args.flags, seed=3)
                seconds, new, steady = asyncio.run(run_via_kafka(store, via, bootstrap, args.batch))
                assert new == len(via), (new, len(via))
                rows.append({"dialect": dialect, "way": "via Kafka (consumer; group join included)",
                             "flags": len(via), "seconds": seconds, "new_items": new,
                             "steady_flags_per_second": round(steady, 1)})
                progress(rows[-1])
            store.engine.dispose()
    finally:
        if broker is not None:
            broker.stop()
        drop_pg_database(args.postgres, pg_url)
        tmp.cleanup()

    for row in rows:
        row["flags_per_second"] = round(row["flags"] / row["seconds"], 1)
        row["seconds"] = round(row["seconds"], 3)
    print("| store | way | flags | seconds | flags/s | after the first batch, flags/s |\n"
          "|---|---|---:|---:|---:|---:|")
    for row in rows:
        steady = row.get("steady_flags_per_second")
        print(f"| {row['dialect']} | {row['way']} | {row['flags']} | {row['seconds']} | "
              f"{row['flags_per_second']:,.0f} | {'' if steady is None else f'{steady:,.0f}'} |")
    result = {
        "command": "bench/bench_moderation.py " + " ".join(sys.argv[1:]),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count()},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
