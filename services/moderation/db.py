"""SQLAlchemy 2 models of the moderation store and the engine factory.

The schema is created and changed only by the Alembic migrations in
``services/moderation/migrations``; these models describe it for the queries
(``tests/moderation/test_migrations.py`` checks that the two agree).
Timestamps are unix seconds (floats), as in the flag records.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    JSON,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text as sql_text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JsonType = JSON().with_variant(JSONB(), "postgresql")

ITEM_STATUSES = ("new", "in_progress", "resolved")
RESOLUTIONS = ("answered", "hidden", "dismissed", "answered_by_page", "deleted_on_page")
ROLES = ("operator", "municipal", "admin")
SQLITE_FILE = "moderation.sqlite3"
# WHERE of the partial queue indexes; the queries send the same terms as literals (a
# partial index serves a query only when its WHERE provably implies the index's WHERE).
OPEN_PREDICATE = "status IN ('new', 'in_progress')"
OPEN_QUESTIONS_PREDICATE = "reason = 'unanswered_question' AND status <> 'resolved'"


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(100))
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    municipalities: Mapped[list] = mapped_column(JsonType, default=list)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Double)

    __table_args__ = (UniqueConstraint("login", name="uq_users_login"),)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Double)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),)


class SessionRow(Base):
    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double)


class Item(Base):
    __tablename__ = "items"

    flag_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    reason: Mapped[str] = mapped_column(String(40))
    page_id: Mapped[str] = mapped_column(String(100))
    page_name: Mapped[str] = mapped_column(String(300))
    municipality: Mapped[str] = mapped_column(String(200))
    platform: Mapped[str] = mapped_column(String(20))
    item_id: Mapped[str] = mapped_column(String(100))
    thread_id: Mapped[str] = mapped_column(String(100))
    author_id: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)
    flagged_at: Mapped[float] = mapped_column(Double)
    scores: Mapped[dict] = mapped_column(JsonType)
    details: Mapped[dict] = mapped_column(JsonType)
    # the theme key of the flagged text (streams/flags.py `topic`), null: none (migration 0002)
    topic: Mapped[str | None] = mapped_column(String(40), nullable=True)
    deadline_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    resolution: Mapped[str | None] = mapped_column(String(30), nullable=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    resolution_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    answer_link: Mapped[str | None] = mapped_column(Text, nullable=True)
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_on_page: Mapped[bool] = mapped_column(Boolean, default=False)
    first_action_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    resolved_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    updated_at: Mapped[float] = mapped_column(Double)
    ingested_at: Mapped[float] = mapped_column(Double)

    __table_args__ = (
        Index("ix_items_municipality_status", "municipality", "status"),
        Index("ix_items_page_id", "page_id"),
        Index("ix_items_reason_status", "reason", "status"),
        # the queue page's index-ordered, index-only reads (services/moderation/web/queries.py):
        # one status in queue order (status, created_at, flag_id) ...
        Index("ix_items_queue", "status", "created_at", "flag_id", "reason", "deadline_at",
              "municipality"),
        # ... the default filter "open" in queue order, without the resolved history ...
        Index("ix_items_open", "created_at", "flag_id", "status", "reason", "deadline_at",
              "municipality", postgresql_where=sql_text(OPEN_PREDICATE),
              sqlite_where=sql_text(OPEN_PREDICATE)),
        # ... the overdue questions that go first, among the open questions only ...
        Index("ix_items_open_questions", "created_at", "flag_id", "deadline_at", "status",
              "municipality", postgresql_where=sql_text(OPEN_QUESTIONS_PREDICATE),
              sqlite_where=sql_text(OPEN_QUESTIONS_PREDICATE)),
        # ... and every facet count in one grouped query
        Index("ix_items_facets", "municipality", "status", "reason", "page_id", "page_name",
              "created_at"),
    )


class AuditLog(Base):
    """Append-only: rows are inserted, never updated or deleted (a trigger enforces it)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flag_id: Mapped[str] = mapped_column(String(24), index=True)
    at: Mapped[float] = mapped_column(Double)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    actor_name: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(30))
    from_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(30), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class ThreadEvent(Base):
    __tablename__ = "thread_events"

    page_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    thread_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    by_page: Mapped[bool] = mapped_column(Boolean, default=False)
    author_id: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double, index=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_thread_events_thread", "page_id", "thread_id", "created_at"),)


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flag_id: Mapped[str] = mapped_column(String(24), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    at: Mapped[float] = mapped_column(Double)
    text: Mapped[str] = mapped_column(Text)
    question: Mapped[int] = mapped_column(Integer)
    negative: Mapped[int] = mapped_column(Integer)
    toxic: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    produced: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class FlagUpdate(Base):
    """Every flag update received (contract A), keyed by its update_id.

    The primary key makes a re-sent update a no-op. ``applied_at`` is null while the update
    waits for its flag (updates and flags come on different topics, so an update may arrive
    first); it is applied as soon as the flag is stored.
    """

    __tablename__ = "flag_updates"

    update_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    flag_id: Mapped[str] = mapped_column(String(24))
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[float] = mapped_column(Double)
    payload: Mapped[dict] = mapped_column(JsonType)
    received_at: Mapped[float] = mapped_column(Double)
    applied_at: Mapped[float | None] = mapped_column(Double, nullable=True)

    __table_args__ = (Index("ix_flag_updates_flag_pending", "flag_id", "applied_at"),)


def _unicode_lower(value):
    return value.lower() if isinstance(value, str) else value


def database_url(database_url: str | None, data_dir: Path | str) -> str:
    """The configured URL, or the embedded default: a SQLite file in the data directory."""
    if database_url:
        return database_url
    path = Path(data_dir).resolve() / SQLITE_FILE
    return f"sqlite:///{path}"


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for the store. SQLite: parent directory created, WAL, foreign keys on,
    a busy timeout, and ``BEGIN IMMEDIATE`` for write transactions (the store marks them
    with the ``dozor_write`` execution option), so that two writers queue instead of
    failing with "database is locked" on a lock upgrade."""
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[1] if "///" in url else ""
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            # take transaction control away from pysqlite, so BEGIN is ours
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
            # SQLite's lower() knows ASCII only; the queue's search is case-insensitive in
            # Russian too (PostgreSQL's lower() follows the locale)
            dbapi_conn.create_function("lower", 1, _unicode_lower, deterministic=True)

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            if conn.get_execution_options().get("dozor_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)
