"""The moderation queue page with 100,000 items in PostgreSQL: p50/p95 per request.

    .venv/bin/python bench/bench_moderation_web.py [--items 100000] [--requests 200]

Creates a fresh PostgreSQL database (``--postgres`` server URL, default the local
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``; dropped at the end), migrates it,
stores ``--items`` synthetic flags through ``ModerationStore.upsert_flags`` in batches of
2,000 (the consumer's path), and then asks the web app (``create_app``, in-process through
the ASGI test client: server time, HTML rendering included, no network) for the queue page:

* the first page of the default filter (open items: new and in progress), as an operator
  (all 20 municipalities) and as a municipal moderator (one municipality): ``page`` as
  served (facet counts cached for 5 s, the list and its total read on every request),
  ``page, counts per request`` (no facet cache: the cost of a first load), and
  ``live fragment`` (``/queue/rows``, what an open queue polls every few seconds);
* in two states of the store: ``all open`` (every item new: the worst case, the default
  filter matches all of them) and ``realistic`` (90 % resolved, as after weeks of work;
  set with one SQL UPDATE, not through the workflow);
* ``none`` for comparison: the page with counts per request and every items index dropped.

The ids of a page come from index-ordered reads that stop at the page (the overdue questions
from ``ix_items_open_questions``, the rest from ``ix_items_open`` / ``ix_items_queue``, see
services/moderation/web/queries.py), so the worst case no longer sorts every open item.
``index_scans`` in the JSON: how often each items index was used per store state.

Prints a markdown table and writes bench/results/moderation_web.json. The issue's bar: the
queue page answers in ≤ 200 ms p95 with 100,000 items stored.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from services.moderation.db import make_engine  # noqa: E402
from services.moderation.migrations import upgrade  # noqa: E402
from services.moderation.store import ModerationStore  # noqa: E402
from services.moderation.web.app import WebConfig, create_app  # noqa: E402
from streams.flags import flag_id  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "results" / "moderation_web.json"
REASONS = ["toxic", "strongly_negative", "unanswered_question", "negative_spike"]
MUNICIPALITIES = [f"МО {name}" for name in (
    "Сыктывкар", "Ухта", "Воркута", "Инта", "Печора", "Усинск", "Вуктыл", "Сосногорск",
    "Ижемский", "Княжпогостский", "Койгородский", "Корткеросский", "Прилузский",
    "Сысольский", "Троицко-Печорский", "Удорский", "Усть-Вымский", "Усть-Куломский",
    "Усть-Цилемский", "Сыктывдинский")]
WORDS = ("когда починят дорогу опять нет воды мусор не вывозят третий день администрация "
         "почему автобус не ходит безобразие сколько можно ждать ответа двор освещение").split()
ITEM_INDEXES = ("ix_items_municipality_status", "ix_items_page_id", "ix_items_reason_status",
                "ix_items_queue", "ix_items_open", "ix_items_open_questions", "ix_items_facets")


def synthetic_flags(n: int, now: float, seed: int = 11) -> list[dict]:
    """Flags over 30 days, 1,670 pages in 20 municipalities (Komi's numbers)."""
    rng = random.Random(seed)
    pages = [(f"vk:-{170000 + p}", MUNICIPALITIES[p % len(MUNICIPALITIES)]) for p in range(1670)]
    flags = []
    for i in range(n):
        page_id, municipality = rng.choice(pages)
        item_id = str(2_000_000 + i)
        reason = rng.choices(REASONS, weights=(5, 3, 4, 1))[0]
        created = now - rng.uniform(0, 30 * 86400)
        details = {}
        if reason == "unanswered_question":
            details = {"asked_at": created, "deadline_at": created + 8 * 3600,
                       "age_seconds": 8 * 3600}
        flags.append({
            "flag_id": flag_id(page_id, item_id, reason), "reason": reason, "page_id": page_id,
            "page_name": f"Страница {page_id} ({municipality})", "municipality": municipality,
            "platform": "vk", "item_id": item_id, "thread_id": str(rng.randrange(10**6)),
            "author_id": str(rng.randrange(10**8)),
            "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))),
            "link": f"https://vk.com/wall{page_id[3:]}_1?reply={item_id}",
            "created_at": created, "flagged_at": created + (8 * 3600 if details else 0),
            "scores": {"question": rng.random(), "negative": rng.random(), "toxic": rng.random()},
            "details": details,
        })
    return flags


def vacuum(engine) -> None:
    """VACUUM ANALYZE items, as autovacuum does soon after a bulk write: fresh statistics
    and the visibility map that index-only scans need."""
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("VACUUM ANALYZE items"))


def index_scans(engine) -> dict[str, int]:
    """idx_scan of every items index (pg_stat_user_indexes). Backends publish their counts
    about once a second, so a difference of two readings is approximate; it tells the
    indexes the page uses from those it never touches."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT indexrelname, idx_scan FROM pg_stat_user_indexes "
                                 "WHERE relname = 'items' ORDER BY indexrelname")).all()
    return {name: int(n) for name, n in rows}


def timed_requests(client: TestClient, path: str, n: int) -> dict:
    client.get(path)  # warm: the first request compiles templates and fills caches
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text[:300]
    times.sort()
    return {"requests": n, "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[int(0.95 * (n - 1))], 1), "max_ms": round(times[-1], 1)}


def signed_in_client(app, login: str, password: str) -> TestClient:
    client = TestClient(app, base_url="https://testserver")
    page = client.get("/")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    done = client.post("/login", data={"login": login, "password": password, "csrf_token": token},
                       follow_redirects=False)
    assert done.status_code == 303, done.text[:300]
    return client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-naive", action="store_true", help="skip the run without indexes")
    args = parser.parse_args()

    server = make_url(args.postgres).set(database="postgres")
    name = f"dozor_bench_web_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    results: dict = {"items": args.items, "requests": args.requests, "machine": platform.node(),
                     "python": platform.python_version(), "runs": []}
    engine = None
    try:
        upgrade(url)
        engine = make_engine(url)
        now = time.time()
        store = ModerationStore(engine)
        flags = synthetic_flags(args.items, now)
        start = time.perf_counter()
        for i in range(0, len(flags), 2000):
            store.upsert_flags(flags[i:i + 2000])
        ingest_s = time.perf_counter() - start
        results["ingest_flags_per_second"] = round(args.items / ingest_s)
        vacuum(engine)
        store.add_user("operator", "operator", "пароль-оператора")
        store.add_user("municipal", "municipal", "пароль-модератора",
                       municipalities=[MUNICIPALITIES[1]])
        apps = {
            # the default: facet counts cached for 5 s, the list and its total always fresh
            "page": create_app(store, WebConfig(cookie_secure=True)),
            "page, counts per request": create_app(
                store, WebConfig(cookie_secure=True, facet_cache_seconds=0)),
        }
        viewers = {"operator": "пароль-оператора", "municipal": "пароль-модератора"}
        clients = {(kind, who): signed_in_client(app, who, password)
                   for kind, app in apps.items() for who, password in viewers.items()}

        def measure(state: str, indexes: str, kinds=("page", "page, counts per request",
                                                     "live fragment")) -> None:
            before = index_scans(engine)
            for kind in kinds:
                for who in viewers:
                    if kind == "live fragment":
                        client, path = clients[("page", who)], "/queue/rows"
                    else:
                        client, path = clients[(kind, who)], "/"
                    figures = timed_requests(client, path, args.requests)
                    results["runs"].append({"state": state, "indexes": indexes, "request": kind,
                                            "viewer": who, **figures})
                    print(f"  {state:>10} {indexes:>8} {kind:>26} {who:>9}: "
                          f"p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms", flush=True)
            after = index_scans(engine)
            used = {name: after[name] - before.get(name, 0) for name in after}
            results.setdefault("index_scans", []).append(
                {"state": state, "indexes": indexes, "idx_scan": used})
            print(f"  index scans ({state}, {indexes}): {used}", flush=True)

        print(f"{args.items} items stored at {results['ingest_flags_per_second']} flags/s",
              flush=True)
        measure("all open", "indexed")
        # After weeks of work most items are resolved; the open queue is what moderators read.
        with engine.begin() as conn:
            conn.execute(text(
                "UPDATE items SET status = 'resolved', resolution = 'dismissed', "
                "resolved_at = flagged_at + 3600 WHERE abs(hashtext(flag_id)) % 10 <> 0"))
        vacuum(engine)
        measure("realistic", "indexed")
        if not args.no_naive:
            with engine.begin() as conn:
                for index in ITEM_INDEXES:
                    conn.execute(text(f"DROP INDEX IF EXISTS {index}"))
            vacuum(engine)
            measure("realistic", "none", kinds=("page, counts per request",))
    finally:
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    print()
    print(f"Queue page (first page, default filter), {args.items:,} items in PostgreSQL, "
          f"{args.requests} requests each")
    print()
    print("| store state | indexes | request | viewer | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    for run in results["runs"]:
        print(f"| {run['state']} | {run['indexes']} | {run['request']} | {run['viewer']} | "
              f"{run['p50_ms']} | {run['p95_ms']} | {run['max_ms']} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    print(f"\nwritten {RESULTS.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
