"""Moderation test helpers: a fake clock, fresh PostgreSQL databases, an emptied store,
`dozor moderation` as a subprocess.

The fixtures built on them are in tests/moderation/conftest.py.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.broker import free_port
from services.moderation.store import ModerationStore

REPO = Path(__file__).resolve().parents[2]

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


def make_store(engines, dialect: str) -> ModerationStore:
    """A ModerationStore on `engines[dialect]`, every table emptied, with a FakeClock at START."""
    engine = engines[dialect]
    empty_database(engine)
    return ModerationStore(engine, clock=FakeClock(), session_hours=12.0)


def moderation_env(bootstrap: str, url: str, prefix: str, tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOZOR_")}
    env.update(
        PYTHONUNBUFFERED="1",
        DOZOR_KAFKA_BOOTSTRAP=bootstrap,
        DOZOR_DATABASE_URL=url,
        DOZOR_DATA_DIR=str(tmp_path / "data"),
        DOZOR_TOPIC_FLAGS=f"{prefix}.flags",
        DOZOR_TOPIC_FLAG_UPDATES=f"{prefix}.flag-updates",
        DOZOR_TOPIC_EVENTS=f"{prefix}.events",
        DOZOR_TOPIC_FEEDBACK=f"{prefix}.feedback",
        DOZOR_TOPIC_PARTITIONS="2",
        DOZOR_MODERATION_GROUP=f"{prefix}-moderation",
        DOZOR_MODERATION_HOST="127.0.0.1",
        DOZOR_MODERATION_PORT=str(free_port()),
        DOZOR_METRICS_HOST="127.0.0.1",
        DOZOR_MODERATION_METRICS_PORT="0",
        DOZOR_BROKER_SESSION_TIMEOUT_SECONDS="3",
        DOZOR_BROKER_HEARTBEAT_SECONDS="0.5",
    )
    env.update(extra)
    return env


def start_moderation(env: dict, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "--log-level", "info", "moderation"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
