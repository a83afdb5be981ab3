"""`alembic upgrade head` on an empty database and `downgrade base`, on PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from services.moderation.db import Base
from services.moderation.migrations import current, downgrade, upgrade

HEAD = "0002"
TABLES = {"users", "api_tokens", "sessions", "items", "audit_log", "thread_events", "feedback",
          "flag_updates"}


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_upgrade_head_then_downgrade_base(fresh_database, dialect):
    url = fresh_database(dialect)
    engine = create_engine(url)
    try:
        assert current(url) is None
        upgrade(url)
        assert current(url) == HEAD
        assert TABLES <= set(inspect(engine).get_table_names())
        # the migrated schema is exactly what the models describe (no drift either way)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        upgrade(url)  # a second upgrade (every service start) is a no-op
        assert current(url) == HEAD

        downgrade(url, "base")
        assert current(url) is None
        left = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert left == set()
        if dialect == "postgresql":
            with engine.connect() as conn:
                assert conn.execute(text(
                    "SELECT count(*) FROM pg_proc WHERE proname = 'moderation_audit_log_append_only'"
                )).scalar() == 0
        upgrade(url)  # and up again from base
        assert current(url) == HEAD
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_0002_adds_a_nullable_topic_to_stored_items_and_takes_it_back(fresh_database, dialect):
    url = fresh_database(dialect)
    engine = create_engine(url)
    row = {"flag_id": "f" * 24, "reason": "toxic", "page_id": "vk:-1", "page_name": "п",
           "municipality": "Ухта", "platform": "vk", "item_id": "1", "thread_id": "1",
           "author_id": "2", "text": "т", "link": "", "created_at": 1.0, "flagged_at": 1.0,
           "scores": "{}", "details": "{}", "status": "new", "edited": False,
           "deleted_on_page": False, "updated_at": 1.0, "ingested_at": 1.0}
    insert = text(f"INSERT INTO items ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})")

    def indexes() -> list:
        return sorted((i["name"], tuple(i["column_names"])) for i in inspect(engine).get_indexes("items"))

    try:
        upgrade(url, "0001")
        with engine.begin() as conn:
            conn.execute(insert, row)
        before = indexes()
        upgrade(url)
        assert current(url) == HEAD
        with engine.connect() as conn:
            assert conn.execute(text("SELECT flag_id, topic FROM items")).all() == [("f" * 24, None)]
        downgrade(url, "0001")
        assert current(url) == "0001"
        assert "topic" not in {c["name"] for c in inspect(engine).get_columns("items")}
        assert indexes() == before  # SQLite copies the table: the queue indexes come back
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM items")).scalar() == 1
        downgrade(url, "base")
    finally:
        engine.dispose()
