"""The moderation store (contract C): the moderators' queue in PostgreSQL or SQLite.

Synchronous; one short transaction per call. The consumer writes flags, flag updates and
events in batches; the web layer (FastAPI sync endpoints, a thread pool) reads the queue and
moves items through the workflow:

    new --take--> in_progress --resolve(answered|hidden|dismissed)--> resolved
    in_progress --release--> new        new --resolve--> resolved (taken and resolved at once)

and the page itself closes items: an answered question becomes resolved/answered_by_page,
a comment deleted on the page closes a new item as resolved/deleted_on_page.
Every change appends a row to ``audit_log``; nothing here updates or deletes audit rows.

Who may see what: operators and admins see every item; a municipal moderator sees the items
of their municipalities only. An item the viewer may not see is reported as not found.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import and_, case, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from services.moderation import db
from services.moderation.errors import InvalidTransition, NotFound, PermissionDenied, UserExists

ITEMS = db.Item.__table__
AUDIT = db.AuditLog.__table__
USERS = db.User.__table__
TOKENS = db.ApiToken.__table__
SESSIONS = db.SessionRow.__table__
EVENTS = db.ThreadEvent.__table__
FEEDBACK = db.Feedback.__table__
UPDATES = db.FlagUpdate.__table__

HUMAN_RESOLUTIONS = ("answered", "hidden", "dismissed")
SYSTEM_ACTOR = "система"
ANSWERED_NOTE = "отвечено страницей"
FEEDBACK_LABELS = ("question", "negative", "toxic")
#: Shortest password a person may set (the web form and `dozor users` apply it alike).
MIN_PASSWORD_LENGTH = 10
# Rows per INSERT statement: keeps the bound parameters under SQLite's 32,766 and
# PostgreSQL's 65,535 whatever the batch size.
CHUNK = 500


# ------------------------------------------------------------------ plain values returned


@dataclass(frozen=True)
class User:
    """A user as the web layer sees it (no password hash)."""

    id: int
    login: str
    display_name: str
    role: str
    municipalities: tuple[str, ...]
    disabled: bool
    created_at: float

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class SessionInfo:
    """A live session: its user, its CSRF token and when it expires."""

    user: User
    csrf_token: str
    expires_at: float


@dataclass(frozen=True)
class ItemFilter:
    """Queue filters; None means "any". ``status`` may also be ``"open"`` (new or in progress).

    Ages are seconds since the item was written (``created_at``); ``query`` is a
    case-insensitive substring of the text, page name or author id.
    """

    municipality: str | None = None
    page_id: str | None = None
    reason: str | None = None
    status: str | None = None
    min_age_seconds: float | None = None
    max_age_seconds: float | None = None
    query: str | None = None
    assignee_id: int | None = None


@dataclass(frozen=True)
class ItemDetail:
    """One queue item with its assignee's name and whether it is an overdue question."""

    flag_id: str
    reason: str
    page_id: str
    page_name: str
    municipality: str
    platform: str
    item_id: str
    thread_id: str
    author_id: str
    text: str
    link: str
    created_at: float
    flagged_at: float
    scores: dict[str, float]
    details: dict[str, Any]
    deadline_at: float | None
    status: str
    resolution: str | None
    assignee_id: int | None
    resolution_note: str | None
    answer_link: str | None
    edited: bool
    deleted_on_page: bool
    first_action_at: float | None
    resolved_at: float | None
    updated_at: float
    ingested_at: float
    topic: str | None = None
    assignee_login: str | None = None
    assignee_name: str | None = None
    overdue: bool = False


@dataclass(frozen=True)
class ItemPage:
    """One page of the queue: its items, how many match in all, and facet counts.

    ``counts`` = {"status": {value: n}, "reason": {...}, "municipality": {...}}; each facet
    is counted under every other filter but its own (so the choices show what they would give),
    always within what the viewer may see.
    """

    items: list[ItemDetail]
    total: int
    counts: dict[str, dict[str, int]]


@dataclass(frozen=True)
class ThreadEvent:
    page_id: str
    item_id: str
    thread_id: str
    kind: str
    by_page: bool
    author_id: str
    text: str
    url: str
    created_at: float
    deleted: bool


@dataclass(frozen=True)
class AuditEntry:
    id: int
    flag_id: str
    at: float
    actor_id: int | None
    actor_name: str
    action: str
    from_status: str | None
    to_status: str | None
    resolution: str | None
    note: str | None


@dataclass(frozen=True)
class Feedback:
    id: int
    flag_id: str
    user_id: int | None
    at: float
    text: str
    question: int
    negative: int
    toxic: int
    note: str | None
    produced: bool

    def labels(self) -> dict[str, int]:
        return {"question": self.question, "negative": self.negative, "toxic": self.toxic}


@dataclass
class IngestCounts:
    """What one batch did (the consumer turns it into metrics)."""

    flags_new: int = 0
    updates_applied: dict[str, int] = field(default_factory=dict)
    updates_pending: int = 0
    events: int = 0


# ------------------------------------------------------------------ helpers


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _user(row) -> User:
    return User(
        id=row.id, login=row.login, display_name=row.display_name, role=row.role,
        municipalities=tuple(row.municipalities or ()), disabled=bool(row.disabled),
        created_at=row.created_at,
    )


def _float_or_none(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _text(value) -> str:
    """A string PostgreSQL can store: NUL characters (which neither text nor jsonb accept,
    and which no comment needs) are removed."""
    return str(value).replace("\x00", "")


def _topic(value) -> str | None:
    """The flag's theme key (``roads``, ``waste``, …); None when absent, null or not a short
    string (an older worker sends no ``topic``)."""
    if not isinstance(value, str):
        return None
    value = _text(value).strip()
    return value if value and len(value) <= 40 else None


def item_row(record: dict, now: float) -> dict:
    """A flag record (streams/flags.py Flag.to_dict) → an items row. Raises KeyError /
    ValueError / TypeError for a record that is not a flag."""
    details = record.get("details") or {}
    if not isinstance(details, dict):
        raise ValueError("details is not an object")
    scores = record.get("scores") or {}
    if not isinstance(scores, dict):
        raise ValueError("scores is not an object")
    flag_id = str(record["flag_id"])
    if not flag_id or len(flag_id) > 24:
        raise ValueError(f"flag_id {flag_id!r} is not a flag id")
    scores = {_text(k): float(v) for k, v in scores.items()}
    if not all(math.isfinite(v) for v in scores.values()):
        raise ValueError("a score is not a finite number")
    created_at = float(record["created_at"])
    flagged_at = float(record.get("flagged_at", created_at))
    if not (math.isfinite(created_at) and math.isfinite(flagged_at)):
        raise ValueError("created_at / flagged_at is not a finite number")
    return {
        "flag_id": flag_id,
        "reason": _text(record["reason"]),
        "page_id": _text(record["page_id"]),
        "page_name": _text(record.get("page_name") or record["page_id"]),
        "municipality": _text(record.get("municipality") or "не указано"),
        "platform": _text(record.get("platform") or ""),
        "item_id": _text(record.get("item_id") or ""),
        "thread_id": _text(record.get("thread_id") or ""),
        "author_id": _text(record.get("author_id") or ""),
        "text": _text(record.get("text") or ""),
        "link": _text(record.get("link") or ""),
        "created_at": created_at,
        "flagged_at": flagged_at,
        "scores": scores,
        "details": details,
        "deadline_at": _float_or_none(details.get("deadline_at")),
        "topic": _topic(record.get("topic")),
        "status": "new",
        "resolution": None,
        "assignee_id": None,
        "resolution_note": None,
        "answer_link": None,
        "edited": False,
        "deleted_on_page": False,
        "first_action_at": None,
        "resolved_at": None,
        "updated_at": now,
        "ingested_at": now,
    }


def _chunks(rows: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


# ------------------------------------------------------------------ the store


class ModerationStore:
    """The moderation store over one SQLAlchemy engine (PostgreSQL or SQLite).

    ``clock`` gives "now" in unix seconds (tests inject a fake one); ``session_hours`` is how
    long a login session lives.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time,
                 session_hours: float = 12.0, password_hasher: PasswordHasher | None = None,
                 on_action: Callable[[str, ItemDetail, bool], None] | None = None) -> None:
        self.engine = engine
        self.clock = clock
        #: called after a moderator action is committed: (action, item after, first action?)
        self.on_action = on_action
        self.session_hours = session_hours
        self._hasher = password_hasher or PasswordHasher()
        self._dialect = engine.dialect.name

    # --- transactions -------------------------------------------------------------------

    @contextmanager
    def _write(self):
        """One write transaction (BEGIN IMMEDIATE on SQLite, see db.make_engine)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(dozor_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self):
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    def _insert(self, table):
        """INSERT for this dialect (with on_conflict_do_nothing / _do_update available)."""
        if self._dialect == "postgresql":
            return pg_insert(table)
        if self._dialect == "sqlite":
            return sqlite_insert(table)
        raise NotImplementedError(f"the moderation store supports PostgreSQL and SQLite, not {self._dialect}")

    def _insert_new(self, conn: Connection, table, rows: list[dict], key: str) -> list[str]:
        """INSERT the rows whose ``key`` is not stored yet; returns the keys inserted.

        PostgreSQL: one statement whose single parameter is the batch as a JSON array
        (``jsonb_populate_recordset``) — the query text stays short and cached, where a
        multi-row VALUES list costs more Python time to build than the database spends on it.
        SQLite: executemany of one cached statement (SQLAlchemy "insertmanyvalues").
        """
        if not rows:
            return []
        if self._dialect == "postgresql":
            columns = ", ".join(c.name for c in table.columns)
            sql = (f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM "
                   f"jsonb_populate_recordset(NULL::{table.name}, %s::jsonb) "
                   f"ON CONFLICT ({key}) DO NOTHING RETURNING {key}")
            result = conn.exec_driver_sql(sql, (json.dumps(rows, ensure_ascii=False),))
            return [r[0] for r in result]
        stmt = self._insert(table).on_conflict_do_nothing(index_elements=[key]).returning(table.c[key])
        return [r[0] for r in conn.execute(stmt, rows)]

    def _audit(self, conn: Connection, rows: list[dict]) -> None:
        if not rows:
            return
        if self._dialect == "postgresql":
            columns = ", ".join(c.name for c in AUDIT.columns if c.name != "id")
            conn.exec_driver_sql(
                f"INSERT INTO audit_log ({columns}) SELECT {columns} FROM "
                f"jsonb_populate_recordset(NULL::audit_log, %s::jsonb)",
                (json.dumps(rows, ensure_ascii=False),))
            return
        conn.execute(insert(AUDIT), rows)

    @staticmethod
    def _audit_row(flag_id: str, at: float, action: str, *, actor: User | None = None,
                   from_status: str | None = None, to_status: str | None = None,
                   resolution: str | None = None, note: str | None = None) -> dict:
        return {
            "flag_id": flag_id, "at": at, "actor_id": actor.id if actor else None,
            "actor_name": (actor.display_name or actor.login) if actor else SYSTEM_ACTOR,
            "action": action, "from_status": from_status, "to_status": to_status,
            "resolution": resolution, "note": note,
        }

    # --- ingest (the consumer) ----------------------------------------------------------

    def ingest(self, flags: list[dict], updates: list[dict], events: list[dict]) -> IngestCounts:
        """Write one consumer batch in ONE transaction: flags, then updates, then events.

        Flags go first so that an update in the same batch finds its flag. Idempotent: a
        re-read batch inserts nothing new (flags by flag_id, updates by update_id).
        """
        counts = IngestCounts()
        with self._write() as conn:
            now = self.clock()
            if flags:
                counts.flags_new = self._upsert_flags(conn, flags, now, counts)
            if updates:
                self._apply_updates(conn, updates, now, counts)
            if events:
                counts.events = self._record_events(conn, events)
        return counts

    def upsert_flags(self, records: list[dict]) -> int:
        """Insert flags that are not stored yet (by flag_id); returns how many were new.

        Each new item gets a "flagged" audit row; updates that arrived before their flag are
        applied now.
        """
        return self.ingest(records, [], []).flags_new

    def apply_updates(self, records: list[dict]) -> int:
        """Apply flag updates (contract A); returns how many were applied now.

        A repeated update_id is ignored; an update whose flag is not stored yet is kept and
        applied when the flag arrives.
        """
        return sum(self.ingest([], records, []).updates_applied.values())

    def record_events(self, records: list[dict]) -> int:
        """Keep canonical events (dicts of streams/events.py) as the threads around items."""
        return self.ingest([], [], records).events

    def _upsert_flags(self, conn: Connection, records: list[dict], now: float,
                      counts: IngestCounts) -> int:
        rows: dict[str, dict] = {}
        for record in records:
            row = item_row(record, now)
            rows.setdefault(row["flag_id"], row)
        # executemany of one cached statement: SQLAlchemy's "insertmanyvalues" sends
        # multi-row INSERTs (RETURNING only the rows that were new) without compiling a
        # statement per batch, which costs more than the database's work
        new_ids = self._insert_new(conn, ITEMS, list(rows.values()), "flag_id")
        if not new_ids:
            return 0
        self._audit(conn, [
            self._audit_row(fid, now, "flagged", to_status="new",
                            note=rows[fid]["reason"]) for fid in new_ids
        ])
        # updates that came before their flag
        pending = []
        for chunk in _chunks(new_ids):
            pending.extend(conn.execute(
                select(UPDATES.c.update_id, UPDATES.c.payload)
                .where(UPDATES.c.flag_id.in_(chunk), UPDATES.c.applied_at.is_(None))
            ).all())
        if pending:
            payloads = sorted((p.payload for p in pending), key=lambda u: float(u.get("at") or 0))
            self._apply_stored(conn, payloads, now, counts)
        return len(new_ids)

    def _apply_updates(self, conn: Connection, records: list[dict], now: float,
                       counts: IngestCounts) -> None:
        rows: dict[str, dict] = {}
        for record in records:
            update_id = str(record["update_id"])
            kind = str(record["kind"])
            if kind not in ("answered", "edited", "deleted", "restored", "spike_ended"):
                raise ValueError(f"unknown update kind {kind!r}")
            rows.setdefault(update_id, {
                "update_id": update_id, "flag_id": str(record["flag_id"]), "kind": kind,
                "at": float(record.get("at") or 0.0), "payload": dict(record),
                "received_at": now, "applied_at": None,
            })
        fresh = self._insert_new(conn, UPDATES, list(rows.values()), "update_id")
        if not fresh:
            return
        fresh_set = set(fresh)
        # in arrival order: one page's updates come in order on one partition
        payloads = [rows[u]["payload"] for u in rows if u in fresh_set]
        self._apply_stored(conn, payloads, now, counts)

    def _apply_stored(self, conn: Connection, payloads: list[dict], now: float,
                      counts: IngestCounts) -> None:
        """Apply stored, not yet applied updates to their items (those whose item exists)."""
        flag_ids = list({str(p["flag_id"]) for p in payloads})
        items: dict[str, dict] = {}
        for chunk in _chunks(flag_ids):
            query = select(ITEMS).where(ITEMS.c.flag_id.in_(chunk))
            if self._dialect == "postgresql":
                query = query.with_for_update()
            for row in conn.execute(query).mappings():
                items[row["flag_id"]] = dict(row)
        applied: list[str] = []
        audit: list[dict] = []
        changed: dict[str, dict] = {}
        for payload in payloads:
            flag_id = str(payload["flag_id"])
            item = items.get(flag_id)
            if item is None:
                counts.updates_pending += 1
                continue
            change, entry = self._update_effect(item, payload, now)
            if change:
                item.update(change)
                changed.setdefault(flag_id, {}).update(change)
            audit.append(entry)
            applied.append(str(payload["update_id"]))
            counts.updates_applied[payload["kind"]] = counts.updates_applied.get(payload["kind"], 0) + 1
        for flag_id, change in changed.items():
            change["updated_at"] = now
            conn.execute(update(ITEMS).where(ITEMS.c.flag_id == flag_id).values(**change))
        self._audit(conn, audit)
        for chunk in _chunks(applied):
            conn.execute(update(UPDATES).where(UPDATES.c.update_id.in_(chunk)).values(applied_at=now))

    def _update_effect(self, item: dict, payload: dict, now: float) -> tuple[dict, dict]:
        """What one update does to an item: (column changes, audit row)."""
        kind = payload["kind"]
        status = item["status"]
        flag_id = item["flag_id"]
        change: dict[str, Any] = {}
        if kind == "answered":
            link = payload.get("link")
            if link:
                change["answer_link"] = str(link)
            if status != "resolved" and item["reason"] == "unanswered_question":
                change.update(status="resolved", resolution="answered_by_page", resolved_at=now,
                              resolution_note=ANSWERED_NOTE)
                note = ANSWERED_NOTE + (f": {link}" if link else "")
                return change, self._audit_row(flag_id, now, "auto_close", from_status=status,
                                               to_status="resolved",
                                               resolution="answered_by_page", note=note)
            return change, self._audit_row(flag_id, now, "answered", from_status=status,
                                           to_status=status, note=link or None)
        if kind == "edited":
            if payload.get("text") is not None:
                change["text"] = _text(payload["text"])
            if isinstance(payload.get("scores"), dict):
                change["scores"] = {str(k): float(v) for k, v in payload["scores"].items()}
            change["edited"] = True
            return change, self._audit_row(flag_id, now, "edited", from_status=status,
                                           to_status=status)
        if kind == "deleted":
            change["deleted_on_page"] = True
            if status == "new":
                change.update(status="resolved", resolution="deleted_on_page", resolved_at=now)
                return change, self._audit_row(flag_id, now, "deleted", from_status=status,
                                               to_status="resolved", resolution="deleted_on_page",
                                               note="удалён на странице")
            return change, self._audit_row(flag_id, now, "deleted", from_status=status,
                                           to_status=status, note="удалён на странице")
        if kind == "restored":
            change["deleted_on_page"] = False
            if status == "resolved" and item["resolution"] == "deleted_on_page":
                # the comment is back on the page: it needs a moderator again
                change.update(status="new", resolution=None, resolved_at=None)
                return change, self._audit_row(flag_id, now, "restored", from_status=status,
                                               to_status="new", note="восстановлен на странице")
            return change, self._audit_row(flag_id, now, "restored", from_status=status,
                                           to_status=status, note="восстановлен на странице")
        # spike_ended
        details = dict(item["details"] or {})
        details["spike_ended"] = {"at": payload.get("at"), **(payload.get("details") or {})}
        change["details"] = details
        return change, self._audit_row(flag_id, now, "spike_ended", from_status=status,
                                       to_status=status, note="всплеск закончился")

    def _record_events(self, conn: Connection, records: list[dict]) -> int:
        # fold the batch per item, in order: the last action wins
        state: dict[tuple[str, str], dict] = {}
        for ev in records:
            kind = ev.get("kind")
            if kind not in ("post", "comment"):
                continue
            key = (str(ev["page_id"]), str(ev["item_id"]))
            action = ev.get("action", "new")
            row = state.get(key)
            if row is None:
                row = state[key] = {
                    "page_id": key[0], "item_id": key[1], "thread_id": str(ev.get("thread_id") or key[1]),
                    "kind": kind, "by_page": bool(ev.get("by_page")),
                    "author_id": str(ev.get("author_id") or ""), "text": None,
                    "url": str(ev.get("url") or ""), "created_at": float(ev.get("created_at") or 0.0),
                    "deleted": False,
                }
            if action == "delete":
                row["deleted"] = True
            else:
                row["deleted"] = False
                row["text"] = _text(ev.get("text") or "")
                if ev.get("url"):
                    row["url"] = str(ev["url"])
        with_text = [r for r in state.values() if r["text"] is not None]
        deletes = [dict(r, text="") for r in state.values() if r["text"] is None]
        keys = ["page_id", "item_id"]
        if with_text:
            stmt = self._insert(EVENTS)
            stmt = stmt.on_conflict_do_update(index_elements=keys, set_={
                "text": stmt.excluded.text, "url": stmt.excluded.url,
                "deleted": stmt.excluded.deleted,
            })
            conn.execute(stmt, with_text)
        if deletes:
            stmt = self._insert(EVENTS)
            stmt = stmt.on_conflict_do_update(index_elements=keys, set_={"deleted": True})
            conn.execute(stmt, deletes)
        return len(state)

    def prune_thread_events(self, older_than: float) -> int:
        """Delete thread events written before ``older_than`` (unix s); returns how many."""
        with self._write() as conn:
            return conn.execute(EVENTS.delete().where(EVENTS.c.created_at < older_than)).rowcount

    # --- reading the queue --------------------------------------------------------------

    def visible_municipalities(self, user: User) -> set[str] | None:
        """None: the user sees every municipality; else the set they may see."""
        if user.role in ("operator", "admin"):
            return None
        return set(user.municipalities)

    def _scope(self, viewer: User) -> list:
        allowed = self.visible_municipalities(viewer)
        if allowed is None:
            return []
        if not allowed:
            return [ITEMS.c.flag_id.is_(None)]  # sees nothing
        return [ITEMS.c.municipality.in_(sorted(allowed))]

    def _conditions(self, filters: ItemFilter, now: float, skip: str | None = None) -> list:
        c = ITEMS.c
        out = []
        if filters.municipality is not None and skip != "municipality":
            out.append(c.municipality == filters.municipality)
        if filters.page_id is not None:
            out.append(c.page_id == filters.page_id)
        if filters.reason is not None and skip != "reason":
            out.append(c.reason == filters.reason)
        if filters.status is not None and skip != "status":
            if filters.status == "open":
                out.append(c.status.in_(("new", "in_progress")))
            else:
                out.append(c.status == filters.status)
        if filters.min_age_seconds is not None:
            out.append(c.created_at <= now - filters.min_age_seconds)
        if filters.max_age_seconds is not None:
            out.append(c.created_at >= now - filters.max_age_seconds)
        if filters.assignee_id is not None:
            out.append(c.assignee_id == filters.assignee_id)
        if filters.query:
            # a bound parameter, never spliced into SQL; LIKE wildcards in it are literal
            needle = filters.query.strip().lower()
            escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
            out.append(or_(
                func.lower(c.text).like(pattern, escape="\\"),
                func.lower(c.page_name).like(pattern, escape="\\"),
                c.author_id == filters.query.strip(),
                c.flag_id == filters.query.strip(),
            ))
        return out

    def _overdue_expr(self, now: float):
        c = ITEMS.c
        return and_(c.reason == "unanswered_question", c.status != "resolved",
                    c.deadline_at.is_not(None), c.deadline_at <= now)

    def _item_query(self, now: float):
        assignee = USERS.alias("assignee")
        overdue = self._overdue_expr(now)
        return (
            select(ITEMS, assignee.c.login.label("assignee_login"),
                   assignee.c.display_name.label("assignee_name"),
                   case((overdue, True), else_=False).label("overdue"))
            .select_from(ITEMS.outerjoin(assignee, assignee.c.id == ITEMS.c.assignee_id))
        ), overdue

    @staticmethod
    def _detail(row) -> ItemDetail:
        data = dict(row._mapping)
        data["overdue"] = bool(data.get("overdue"))
        data["edited"] = bool(data["edited"])
        data["deleted_on_page"] = bool(data["deleted_on_page"])
        return ItemDetail(**data)

    def list_items(self, viewer: User, filters: ItemFilter | None = None, limit: int = 50,
                   offset: int = 0) -> ItemPage:
        """The queue as ``viewer`` may see it: overdue unanswered questions first, then the
        oldest first; with the total and the facet counts."""
        filters = filters or ItemFilter()
        limit = max(0, min(int(limit), 1000))
        offset = max(0, int(offset))
        now = self.clock()
        scope = self._scope(viewer)
        where = scope + self._conditions(filters, now)
        query, overdue = self._item_query(now)
        query = (query.where(*where)
                 .order_by(case((overdue, 0), else_=1), ITEMS.c.created_at, ITEMS.c.flag_id)
                 .limit(limit).offset(offset))
        with self._read() as conn:
            items = [self._detail(r) for r in conn.execute(query)]
            total = conn.execute(select(func.count()).select_from(ITEMS).where(*where)).scalar_one()
            counts: dict[str, dict[str, int]] = {}
            for facet in ("status", "reason", "municipality"):
                column = ITEMS.c[facet]
                rows = conn.execute(
                    select(column, func.count()).where(*scope, *self._conditions(filters, now, facet))
                    .group_by(column)
                ).all()
                counts[facet] = {value: n for value, n in rows}
        return ItemPage(items=items, total=int(total), counts=counts)

    def get_item(self, viewer: User, flag_id: str) -> ItemDetail | None:
        """The item, or None when there is none or the viewer may not see it."""
        now = self.clock()
        query, _ = self._item_query(now)
        with self._read() as conn:
            row = conn.execute(query.where(ITEMS.c.flag_id == flag_id, *self._scope(viewer))).first()
        return self._detail(row) if row else None

    def thread(self, item: ItemDetail, *, before: int = 5, after: int = 5) -> list[ThreadEvent]:
        """The post of the item's thread and up to ``before``/``after`` comments around the
        item (by time), the item itself included; oldest first."""
        c = EVENTS.c
        with self._read() as conn:
            post = conn.execute(select(EVENTS).where(
                c.page_id == item.page_id, c.item_id == item.thread_id, c.kind == "post")).first()
            same_thread = and_(c.page_id == item.page_id, c.thread_id == item.thread_id,
                               c.kind == "comment")
            earlier = conn.execute(
                select(EVENTS).where(same_thread, c.created_at <= item.created_at,
                                     c.item_id != item.item_id)
                .order_by(c.created_at.desc(), c.item_id.desc()).limit(before)).all()
            own = conn.execute(select(EVENTS).where(same_thread, c.item_id == item.item_id)).first()
            later = conn.execute(
                select(EVENTS).where(same_thread, c.created_at > item.created_at,
                                     c.item_id != item.item_id)
                .order_by(c.created_at, c.item_id).limit(after)).all()
        rows = ([post] if post else []) + list(reversed(earlier)) + ([own] if own else []) + list(later)
        return [ThreadEvent(**{**dict(r._mapping), "by_page": bool(r.by_page),
                               "deleted": bool(r.deleted)}) for r in rows]

    def history(self, flag_id: str) -> list[AuditEntry]:
        """The item's audit log, oldest first."""
        with self._read() as conn:
            rows = conn.execute(select(AUDIT).where(AUDIT.c.flag_id == flag_id)
                                .order_by(AUDIT.c.id)).all()
        return [AuditEntry(**dict(r._mapping)) for r in rows]

    def oldest_new_flagged_at(self) -> float | None:
        """flagged_at of the oldest item still new (None: none waits)."""
        with self._read() as conn:
            return conn.execute(select(func.min(ITEMS.c.flagged_at))
                                .where(ITEMS.c.status == "new")).scalar()

    def queue_depth(self) -> dict[tuple[str, str, str], int]:
        """{(status, reason, municipality): items} over the whole store (for the metrics)."""
        c = ITEMS.c
        with self._read() as conn:
            rows = conn.execute(select(c.status, c.reason, c.municipality, func.count())
                                .group_by(c.status, c.reason, c.municipality)).all()
        return {(s, r, m): n for s, r, m, n in rows}

    # --- the workflow -------------------------------------------------------------------

    def _locked_item(self, conn: Connection, viewer: User, flag_id: str) -> dict:
        query = select(ITEMS).where(ITEMS.c.flag_id == flag_id, *self._scope(viewer))
        if self._dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"нет элемента {flag_id}")
        return dict(row)

    def _notify(self, action: str, item: ItemDetail | None, first_action: bool) -> None:
        if self.on_action is not None and item is not None:
            try:
                self.on_action(action, item, first_action)
            except Exception:  # metrics must never undo or fail a committed action
                logging.getLogger(__name__).exception("on_action hook failed")

    @staticmethod
    def _may_override(viewer: User) -> bool:
        return viewer.role in ("operator", "admin")

    def take(self, viewer: User, flag_id: str) -> ItemDetail:
        """new → in_progress, assigned to the viewer. Taking one's own item again changes
        nothing; an item in another's work or resolved raises InvalidTransition."""
        changed = False
        with self._write() as conn:
            now = self.clock()
            item = self._locked_item(conn, viewer, flag_id)
            first = item["first_action_at"] is None
            if item["status"] == "in_progress" and item["assignee_id"] == viewer.id:
                pass
            elif item["status"] != "new":
                raise InvalidTransition(
                    "элемент уже в работе у другого модератора" if item["status"] == "in_progress"
                    else "элемент уже решён")
            else:
                conn.execute(update(ITEMS).where(ITEMS.c.flag_id == flag_id).values(
                    status="in_progress", assignee_id=viewer.id, updated_at=now,
                    first_action_at=item["first_action_at"] or now))
                self._audit(conn, [self._audit_row(flag_id, now, "take", actor=viewer,
                                                   from_status="new", to_status="in_progress")])
                changed = True
        detail = self.get_item(viewer, flag_id)
        if changed:
            self._notify("take", detail, first)
        return detail

    def release(self, viewer: User, flag_id: str, note: str | None = None) -> ItemDetail:
        """in_progress → new, unassigned. Only the assignee, an operator or an admin."""
        with self._write() as conn:
            now = self.clock()
            item = self._locked_item(conn, viewer, flag_id)
            if item["status"] != "in_progress":
                raise InvalidTransition("вернуть в очередь можно только элемент в работе")
            if item["assignee_id"] != viewer.id and not self._may_override(viewer):
                raise PermissionDenied("элемент в работе у другого модератора")
            conn.execute(update(ITEMS).where(ITEMS.c.flag_id == flag_id).values(
                status="new", assignee_id=None, updated_at=now))
            self._audit(conn, [self._audit_row(flag_id, now, "release", actor=viewer,
                                               from_status="in_progress", to_status="new",
                                               note=note or None)])
        detail = self.get_item(viewer, flag_id)
        self._notify("release", detail, False)
        return detail

    def resolve(self, viewer: User, flag_id: str, resolution: str, note: str | None = None) -> ItemDetail:
        """new or in_progress → resolved with answered / hidden / dismissed and a note.

        A new item is taken and resolved at once (the viewer becomes its assignee); an item
        in another's work only by an operator or admin; a resolved one raises InvalidTransition.
        """
        if resolution not in HUMAN_RESOLUTIONS:
            raise InvalidTransition(
                f"решение {resolution!r} неизвестно: answered, hidden или dismissed")
        note = (note or "").strip() or None
        with self._write() as conn:
            now = self.clock()
            item = self._locked_item(conn, viewer, flag_id)
            status = item["status"]
            if status == "resolved":
                raise InvalidTransition("элемент уже решён")
            if (status == "in_progress" and item["assignee_id"] != viewer.id
                    and not self._may_override(viewer)):
                raise PermissionDenied("элемент в работе у другого модератора")
            conn.execute(update(ITEMS).where(ITEMS.c.flag_id == flag_id).values(
                status="resolved", resolution=resolution, resolution_note=note,
                assignee_id=item["assignee_id"] or viewer.id, resolved_at=now, updated_at=now,
                first_action_at=item["first_action_at"] or now))
            self._audit(conn, [self._audit_row(flag_id, now, "resolve", actor=viewer,
                                               from_status=status, to_status="resolved",
                                               resolution=resolution, note=note)])
            first = item["first_action_at"] is None
        detail = self.get_item(viewer, flag_id)
        self._notify("resolve", detail, first)
        return detail

    # --- feedback -----------------------------------------------------------------------

    def report_model_error(self, viewer: User, flag_id: str, labels: dict[str, int],
                           note: str | None = None) -> Feedback:
        """Store «модель ошиблась»: the item's text with the right labels (0/1 per
        question/negative/toxic; a missing label is 0). Audited as "model_error"."""
        unknown = set(labels) - set(FEEDBACK_LABELS)
        if unknown:
            raise InvalidTransition(f"неизвестные метки {sorted(unknown)}: question, negative, toxic")
        values = {}
        for name in FEEDBACK_LABELS:
            value = labels.get(name, 0)
            if value not in (0, 1, True, False):
                raise InvalidTransition(f"метка {name}: 0 или 1, а не {value!r}")
            values[name] = int(value)
        note = (note or "").strip() or None
        with self._write() as conn:
            now = self.clock()
            item = self._locked_item(conn, viewer, flag_id)
            row = {"flag_id": flag_id, "user_id": viewer.id, "at": now, "text": item["text"],
                   "note": note, "produced": False, **values}
            new_id = conn.execute(insert(FEEDBACK).values(**row).returning(FEEDBACK.c.id)).scalar_one()
            given = ", ".join(k for k, v in values.items() if v) or "ни одной метки"
            self._audit(conn, [self._audit_row(
                flag_id, now, "model_error", actor=viewer, from_status=item["status"],
                to_status=item["status"], note=f"верные метки: {given}" + (f"; {note}" if note else ""))])
        self._notify("model_error", self.get_item(viewer, flag_id), False)
        return Feedback(id=new_id, **row)

    def unproduced_feedback(self, limit: int = 500) -> list[Feedback]:
        """Feedback rows not yet produced to Kafka, oldest first."""
        with self._read() as conn:
            rows = conn.execute(select(FEEDBACK).where(FEEDBACK.c.produced.is_(False))
                                .order_by(FEEDBACK.c.id).limit(limit)).all()
        return [Feedback(**{**dict(r._mapping), "produced": bool(r.produced)}) for r in rows]

    def mark_feedback_produced(self, ids: list[int]) -> None:
        with self._write() as conn:
            for chunk in _chunks(list(ids)):
                conn.execute(update(FEEDBACK).where(FEEDBACK.c.id.in_(chunk)).values(produced=True))

    def feedback_for_export(self) -> list[Feedback]:
        """The newest feedback per flag (a later correction replaces an earlier one), by id."""
        latest = (select(func.max(FEEDBACK.c.id)).group_by(FEEDBACK.c.flag_id)).scalar_subquery()
        with self._read() as conn:
            rows = conn.execute(select(FEEDBACK).where(FEEDBACK.c.id.in_(latest))
                                .order_by(FEEDBACK.c.id)).all()
        return [Feedback(**{**dict(r._mapping), "produced": bool(r.produced)}) for r in rows]

    # --- users, tokens, sessions --------------------------------------------------------

    def add_user(self, login: str, role: str, password: str | None = None, *,
                 display_name: str | None = None, municipalities: Iterable[str] = ()) -> User:
        """Create a user. A municipal moderator needs at least one municipality."""
        login = login.strip()
        if not login:
            raise ValueError("логин не может быть пустым")
        if role not in db.ROLES:
            raise ValueError(f"роль {role!r} неизвестна: operator, municipal или admin")
        municipalities = sorted({m.strip() for m in municipalities if m and m.strip()})
        if role == "municipal" and not municipalities:
            raise ValueError("модератору муниципалитета нужен хотя бы один муниципалитет (--municipality)")
        with self._write() as conn:
            exists = conn.execute(select(USERS.c.id).where(USERS.c.login == login)).first()
            if exists:
                raise UserExists(f"пользователь {login!r} уже есть")
            row = {"login": login, "display_name": display_name or login, "role": role,
                   "municipalities": municipalities,
                   "password_hash": self._hasher.hash(password) if password else None,
                   "disabled": False, "created_at": self.clock()}
            new_id = conn.execute(insert(USERS).values(**row).returning(USERS.c.id)).scalar_one()
        return User(id=new_id, login=login, display_name=row["display_name"], role=role,
                    municipalities=tuple(municipalities), disabled=False,
                    created_at=row["created_at"])

    def list_users(self) -> list[User]:
        with self._read() as conn:
            return [_user(r) for r in conn.execute(select(USERS).order_by(USERS.c.login))]

    def get_user(self, login: str) -> User | None:
        with self._read() as conn:
            row = conn.execute(select(USERS).where(USERS.c.login == login)).first()
        return _user(row) if row else None

    def disable_user(self, login: str) -> User:
        """Disable a user: their sessions end, their tokens stop working."""
        with self._write() as conn:
            row = conn.execute(select(USERS).where(USERS.c.login == login)).first()
            if row is None:
                raise NotFound(f"нет пользователя {login!r}")
            conn.execute(update(USERS).where(USERS.c.id == row.id).values(disabled=True))
            conn.execute(SESSIONS.delete().where(SESSIONS.c.user_id == row.id))
        return self.get_user(login)

    def set_password(self, login: str, password: str) -> None:
        """Set a new password; every session of the user ends."""
        if not password:
            raise ValueError("пароль не может быть пустым")
        with self._write() as conn:
            row = conn.execute(select(USERS.c.id).where(USERS.c.login == login)).first()
            if row is None:
                raise NotFound(f"нет пользователя {login!r}")
            conn.execute(update(USERS).where(USERS.c.id == row.id)
                         .values(password_hash=self._hasher.hash(password)))
            conn.execute(SESSIONS.delete().where(SESSIONS.c.user_id == row.id))

    def authenticate(self, login: str, password: str) -> User | None:
        """The user if the password is right and the user is enabled, else None."""
        with self._read() as conn:
            row = conn.execute(select(USERS).where(USERS.c.login == login.strip())).first()
        if row is None or row.disabled or not row.password_hash:
            # hash anyway, so a wrong login costs as much time as a wrong password
            try:
                self._hasher.verify(self._dummy_hash(), password or "x")
            except (VerificationError, InvalidHashError):
                pass
            return None
        try:
            self._hasher.verify(row.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if self._hasher.check_needs_rehash(row.password_hash):
            with self._write() as conn:
                conn.execute(update(USERS).where(USERS.c.id == row.id)
                             .values(password_hash=self._hasher.hash(password)))
        return _user(row)

    _dummy: str | None = None

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_hex(8))
        return self._dummy

    def create_token(self, user: User, name: str) -> str:
        """A new API token for the user; only its sha256 is stored, the plaintext is
        returned once."""
        token = "dzr_" + secrets.token_urlsafe(32)
        with self._write() as conn:
            conn.execute(insert(TOKENS).values(user_id=user.id, name=name, token_hash=sha256(token),
                                               created_at=self.clock(), disabled=False))
        return token

    def user_for_token(self, token: str | None) -> User | None:
        """The enabled user of an enabled token, else None."""
        if not token:
            return None
        with self._read() as conn:
            row = conn.execute(
                select(USERS).join(TOKENS, TOKENS.c.user_id == USERS.c.id)
                .where(TOKENS.c.token_hash == sha256(token), TOKENS.c.disabled.is_(False),
                       USERS.c.disabled.is_(False))).first()
        return _user(row) if row else None

    def disable_token(self, user: User, name: str) -> int:
        """Disable the user's enabled tokens named `name`; returns how many were disabled."""
        with self._write() as conn:
            return conn.execute(update(TOKENS).where(TOKENS.c.user_id == user.id, TOKENS.c.name == name,
                                                     TOKENS.c.disabled.is_(False))
                                .values(disabled=True)).rowcount

    def create_session(self, user: User) -> tuple[str, str]:
        """A new login session: (session id for the cookie, CSRF token). Only the sha256 of
        the id is stored."""
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        with self._write() as conn:
            now = self.clock()
            conn.execute(insert(SESSIONS).values(
                id_hash=sha256(session_id), user_id=user.id, csrf_token=csrf, created_at=now,
                expires_at=now + self.session_hours * 3600.0))
        return session_id, csrf

    def session(self, session_id: str | None) -> SessionInfo | None:
        """The live session (user, CSRF token, expiry), or None: unknown, expired or the
        user disabled."""
        if not session_id:
            return None
        with self._read() as conn:
            row = conn.execute(
                select(USERS, SESSIONS.c.csrf_token, SESSIONS.c.expires_at)
                .join(SESSIONS, SESSIONS.c.user_id == USERS.c.id)
                .where(SESSIONS.c.id_hash == sha256(session_id))).first()
        if row is None or row.disabled or row.expires_at <= self.clock():
            return None
        return SessionInfo(user=_user(row), csrf_token=row.csrf_token, expires_at=row.expires_at)

    def session_user(self, session_id: str | None) -> User | None:
        """The user of a live session, or None (see ``session`` for the CSRF token)."""
        info = self.session(session_id)
        return info.user if info else None

    def end_session(self, session_id: str | None) -> None:
        if not session_id:
            return
        with self._write() as conn:
            conn.execute(SESSIONS.delete().where(SESSIONS.c.id_hash == sha256(session_id)))

    def prune_sessions(self) -> int:
        """Delete expired sessions; returns how many."""
        with self._write() as conn:
            return conn.execute(SESSIONS.delete().where(SESSIONS.c.expires_at <= self.clock())).rowcount


def open_store(url: str, *, migrate: bool = True, **kwargs) -> ModerationStore:
    """An engine for ``url``, migrated to the newest schema unless ``migrate`` is False."""
    if migrate:
        from services.moderation.migrations import upgrade

        if url.startswith("sqlite"):
            db.make_engine(url).dispose()  # creates the parent directory
        upgrade(url)
    return ModerationStore(db.make_engine(url), **kwargs)
