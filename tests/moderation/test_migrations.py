"""`alembic upgrade head` on an empty database and `downgrade base`, on PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from services.moderation.db import Base
from services.moderation.migrations import current, downgrade, upgrade

TABLES = {"users", "api_tokens", "sessions", "items", "audit_log", "thread_events", "feedback",
          "flag_updates"}


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_upgrade_head_then_downgrade_base(fresh_database, dialect):
    url = fresh_database(dialect)
    engine = create_engine(url)
    try:
        assert current(url) is None
        upgrade(url)
        assert current(url) == "0001"
        assert TABLES <= set(inspect(engine).get_table_names())
        # the migrated schema is exactly what the models describe (no drift either way)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        upgrade(url)  # a second upgrade (every service start) is a no-op
        assert current(url) == "0001"

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
        assert current(url) == "0001"
    finally:
        engine.dispose()
