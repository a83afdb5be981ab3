"""Shared fixtures of the moderation tests (store, consumer, web).

* ``pg_server_url`` — the PostgreSQL of this machine (127.0.0.1:5432, user postgres, trust);
  ``DOZOR_TEST_POSTGRES_URL`` may point elsewhere (a server URL, database part ignored).
* ``pg_url`` — a fresh database ``dozor_test_<random>`` for the test session, migrated to
  head; dropped at the end.
* ``sqlite_url`` — a fresh SQLite file for the session, migrated to head.
* ``store`` — parametrised over ``postgresql`` and ``sqlite``: a ModerationStore on an
  emptied database (every table truncated before the test) with a fake clock
  (``store.clock`` is a ``FakeClock``: ``store.clock.advance(60)``).
* ``pg_store`` / ``sqlite_store`` — the same for one dialect.
* ``make_user`` — user factory: ``make_user(role="municipal", municipalities=["Сыктывкар"])``
  (password ``"пароль-<login>"`` unless given).
* ``make_flag`` — flag record factory (the dict ``streams/flags.py`` sends).
* ``fresh_database`` — ``fresh_database(dialect)`` → URL of another empty, NOT migrated
  database (dropped at the end); for migration and process tests.
"""

from __future__ import annotations

import importlib
import itertools
import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.moderation import db
from services.moderation.migrations import upgrade
from services.moderation.store import ModerationStore
from streams.flags import flag_id as make_flag_id

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
START = 1_780_000_000.0  # 2026-05-28, a fixed "now" for the fake clock
# Children before parents, so that a DELETE of every table respects the foreign keys.
TABLES = ("flag_updates", "feedback", "thread_events", "sessions", "api_tokens", "items", "users")
SQLITE_AUDIT_TRIGGERS = importlib.import_module(
    "services.moderation.migrations.versions.0001_initial").SQLITE_AUDIT_TRIGGERS


class FakeClock:
    """A settable clock for the store: ``clock()`` → now; ``advance(s)``; ``set(t)``."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def set(self, now: float) -> None:
        self.now = now


def _server_url():
    return make_url(os.environ.get("DOZOR_TEST_POSTGRES_URL", DEFAULT_PG)).set(database="postgres")


def create_pg_database(prefix: str = "dozor_test") -> str:
    """Create an empty database with a random name; returns its SQLAlchemy URL."""
    server = _server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    """Drop a database made by create_pg_database, closing whatever still connects to it."""
    name = make_url(url).database
    engine = create_engine(_server_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def fresh_database(tmp_path_factory):
    """``fresh_database("postgresql" | "sqlite")`` → URL of a new empty database (no schema)."""
    made: list[str] = []
    counter = itertools.count()

    def factory(dialect: str) -> str:
        if dialect == "postgresql":
            url = create_pg_database()
            made.append(url)
            return url
        if dialect == "sqlite":
            path = tmp_path_factory.mktemp("sqlite") / f"moderation{next(counter)}.sqlite3"
            return f"sqlite:///{path}"
        raise ValueError(dialect)

    yield factory
    for url in made:
        drop_pg_database(url)


@pytest.fixture(scope="session")
def pg_url(fresh_database) -> str:
    """A migrated PostgreSQL database for the whole test session."""
    url = fresh_database("postgresql")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def sqlite_url(fresh_database) -> str:
    """A migrated SQLite file for the whole test session."""
    url = fresh_database("sqlite")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def _engines(pg_url, sqlite_url):
    engines = {"postgresql": db.make_engine(pg_url), "sqlite": db.make_engine(sqlite_url)}
    yield engines
    for engine in engines.values():
        engine.dispose()


def empty_database(engine) -> None:
    """Delete every row of every table, the audit log's too — which the store can never do:
    on PostgreSQL the append-only trigger is bypassed for this session only
    (``session_replication_role = replica``, superuser), on SQLite it is dropped and made
    again exactly as the migration makes it."""
    with engine.connect().execution_options(dozor_write=True) as conn:
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                for table in ("audit_log",) + TABLES:
                    conn.execute(text(f"DELETE FROM {table}"))
            else:
                for name in ("audit_log_no_update", "audit_log_no_delete"):
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
                for table in ("audit_log",) + TABLES:
                    conn.execute(text(f"DELETE FROM {table}"))
                for statement in SQLITE_AUDIT_TRIGGERS:
                    conn.execute(text(statement))


def _store(engines, dialect: str) -> ModerationStore:
    engine = engines[dialect]
    empty_database(engine)
    return ModerationStore(engine, clock=FakeClock(), session_hours=12.0)


@pytest.fixture(params=["postgresql", "sqlite"])
def store(request, _engines) -> ModerationStore:
    """A ModerationStore over PostgreSQL and over SQLite, emptied, with a FakeClock."""
    return _store(_engines, request.param)


@pytest.fixture
def pg_store(_engines) -> ModerationStore:
    return _store(_engines, "postgresql")


@pytest.fixture
def sqlite_store(_engines) -> ModerationStore:
    return _store(_engines, "sqlite")


@pytest.fixture
def make_user(store):
    """``make_user(role="operator", municipalities=(), login=None, password=None)`` → User."""
    counter = itertools.count()

    def factory(role: str = "operator", municipalities=(), login: str | None = None,
                password: str | None = None, display_name: str | None = None):
        login = login or f"{role}{next(counter)}-{uuid.uuid4().hex[:6]}"
        return store.add_user(login, role, password or f"пароль-{login}",
                              display_name=display_name, municipalities=municipalities)

    return factory


@pytest.fixture
def make_flag():
    """``make_flag(reason="toxic", municipality="Сыктывкар", **fields)`` → a flag record dict
    (streams/flags.py Flag.to_dict) with a unique random item id unless ``item_id`` is given.
    ``text_`` sets the text; ``deadline_at`` the question's deadline (default created + 1 h)."""

    def factory(reason: str = "toxic", *, page_id: str = "vk:-170001",
                municipality: str = "Сыктывкар", item_id: str | None = None,
                created_at: float = START - 3600, flagged_at: float | None = None,
                text_: str | None = None, deadline_at: float | None = None, **fields) -> dict:
        item_id = item_id or uuid.uuid4().hex[:12]
        details = dict(fields.pop("details", {}) or {})
        if reason == "unanswered_question" and "deadline_at" not in details:
            details["deadline_at"] = deadline_at if deadline_at is not None else created_at + 3600
            details.setdefault("asked_at", created_at)
        record = {
            "flag_id": make_flag_id(page_id, item_id, reason),
            "reason": reason,
            "page_id": page_id,
            "page_name": fields.pop("page_name", f"Администрация {municipality}"),
            "municipality": municipality,
            "platform": page_id.split(":", 1)[0],
            "item_id": item_id,
            "thread_id": fields.pop("thread_id", "100"),
            "author_id": fields.pop("author_id", "42"),
            "text": text_ if text_ is not None else f"комментарий {item_id}",
            "link": fields.pop("link", f"https://vk.com/wall-170001_100?reply={item_id}"),
            "created_at": created_at,
            "flagged_at": flagged_at if flagged_at is not None else created_at,
            "scores": fields.pop("scores", {"toxic": 0.9, "negative": 0.7, "question": 0.1}),
            "details": details,
        }
        record.update(fields)
        return record

    return factory
