"""The moderation store: users, tokens, sessions, items, audit log, thread events,
feedback and flag updates; the audit log refuses UPDATE and DELETE by trigger.

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
# the partial queue indexes' WHERE (as services/moderation/db.py has them; written out here,
# so that this revision stays what it is when the models change)
OPEN_PREDICATE = "status IN ('new', 'in_progress')"
OPEN_QUESTIONS_PREDICATE = "reason = 'unanswered_question' AND status <> 'resolved'"

PG_AUDIT_FUNCTION = """
CREATE FUNCTION moderation_audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END
$$ LANGUAGE plpgsql
"""
PG_AUDIT_TRIGGERS = [
    "CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION moderation_audit_log_append_only()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION moderation_audit_log_append_only()",
]
SQLITE_AUDIT_TRIGGERS = [
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END",
]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("login", sa.String(100), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("municipalities", JSON, nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.UniqueConstraint("login", name="uq_users_login"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_table(
        "sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("flag_id", sa.String(24), primary_key=True),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("page_id", sa.String(100), nullable=False),
        sa.Column("page_name", sa.String(300), nullable=False),
        sa.Column("municipality", sa.String(200), nullable=False),
        sa.Column("platform", sa.String(20), nullable=False),
        sa.Column("item_id", sa.String(100), nullable=False),
        sa.Column("thread_id", sa.String(100), nullable=False),
        sa.Column("author_id", sa.String(100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("link", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("flagged_at", sa.Double(), nullable=False),
        sa.Column("scores", JSON, nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("deadline_at", sa.Double(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("resolution", sa.String(30), nullable=True),
        sa.Column("assignee_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("answer_link", sa.Text(), nullable=True),
        sa.Column("edited", sa.Boolean(), nullable=False),
        sa.Column("deleted_on_page", sa.Boolean(), nullable=False),
        sa.Column("first_action_at", sa.Double(), nullable=True),
        sa.Column("resolved_at", sa.Double(), nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("ingested_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_items_municipality_status", "items", ["municipality", "status"])
    op.create_index("ix_items_page_id", "items", ["page_id"])
    op.create_index("ix_items_reason_status", "items", ["reason", "status"])
    # the queue page (services/moderation/web/queries.py): index-ordered, index-only reads of
    # the page's ids (one status; the default "open"; the overdue questions first) and all
    # facet counts in one grouped query (bench_moderation_web.py)
    op.create_index("ix_items_queue", "items",
                    ["status", "created_at", "flag_id", "reason", "deadline_at", "municipality"])
    op.create_index("ix_items_open", "items",
                    ["created_at", "flag_id", "status", "reason", "deadline_at", "municipality"],
                    postgresql_where=sa.text(OPEN_PREDICATE), sqlite_where=sa.text(OPEN_PREDICATE))
    op.create_index("ix_items_open_questions", "items",
                    ["created_at", "flag_id", "deadline_at", "status", "municipality"],
                    postgresql_where=sa.text(OPEN_QUESTIONS_PREDICATE),
                    sqlite_where=sa.text(OPEN_QUESTIONS_PREDICATE))
    op.create_index("ix_items_facets", "items",
                    ["municipality", "status", "reason", "page_id", "page_name", "created_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("flag_id", sa.String(24), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("actor_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("actor_name", sa.String(200), nullable=False),
        sa.Column("action", sa.String(30), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=True),
        sa.Column("resolution", sa.String(30), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_index("ix_audit_log_flag_id", "audit_log", ["flag_id"])
    op.create_table(
        "thread_events",
        sa.Column("page_id", sa.String(100), primary_key=True),
        sa.Column("item_id", sa.String(100), primary_key=True),
        sa.Column("thread_id", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("by_page", sa.Boolean(), nullable=False),
        sa.Column("author_id", sa.String(100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_thread_events_created_at", "thread_events", ["created_at"])
    op.create_index("ix_thread_events_thread", "thread_events", ["page_id", "thread_id", "created_at"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("flag_id", sa.String(24), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("question", sa.Integer(), nullable=False),
        sa.Column("negative", sa.Integer(), nullable=False),
        sa.Column("toxic", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("produced", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_feedback_flag_id", "feedback", ["flag_id"])
    op.create_index("ix_feedback_produced", "feedback", ["produced"])
    op.create_table(
        "flag_updates",
        sa.Column("update_id", sa.String(64), primary_key=True),
        sa.Column("flag_id", sa.String(24), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("applied_at", sa.Double(), nullable=True),
    )
    op.create_index("ix_flag_updates_flag_pending", "flag_updates", ["flag_id", "applied_at"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_AUDIT_FUNCTION)
        for statement in PG_AUDIT_TRIGGERS:
            op.execute(statement)
    elif op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_AUDIT_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    for table in ("flag_updates", "feedback", "thread_events", "audit_log", "items",
                  "sessions", "api_tokens", "users"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS moderation_audit_log_append_only()")
