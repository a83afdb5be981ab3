"""The queue as the UI and the API read it, fast enough for 100,000 stored items.

Same filters, scope and order as ``ModerationStore.list_items`` (built from the store's own
scope, filter and "overdue" expressions), in a few short queries instead of five scans of
the wide items rows:

1. the page's flag ids in two ordered parts, each read from an index in queue order and
   stopped after the page (no sort of every visible row):
   a. the overdue unanswered questions, by created_at, flag_id — partial index
      ``ix_items_open_questions`` (open questions only);
   b. everything else, by created_at, flag_id — partial index ``ix_items_open`` for the
      default filter "open", ``ix_items_queue`` (status, created_at, ...) for one status;
   the page's offset runs over (a) then (b); the status and "overdue" constants are sent
   as SQL literals, so that PostgreSQL and SQLite can match the partial indexes' WHERE;
2. the total (an index-only count);
3. the full rows of those (at most ``limit``) ids;
4. the facet counts: status, reason and municipality from ONE grouped query over the
   narrow ``ix_items_facets`` index (each facet then summed in Python under every filter but
   its own: the counts ``list_items`` gets from one scan per facet), and the page facet
   (under every filter but the page) — both cached a few seconds (FacetCache).

``tests/moderation/test_web_api.py`` checks that it returns what ``list_items`` returns.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter

from services.moderation.store import ITEMS, ItemDetail, ItemFilter, ItemPage, ModerationStore, User

# statuses whose filter is sent as SQL literals (a partial index matches only constants)
KNOWN_STATUSES = ("open", "new", "in_progress", "resolved")


@dataclass(frozen=True)
class QueuePage:
    """One page of the queue, its facet counts, and the page facet (id, name, items)."""

    page: ItemPage
    pages: list[tuple[str, str, int]]


def inline_constants(expression):
    """``expression`` with its string parameters rendered as SQL literals.

    A partial index is used only when the planner can prove the query's WHERE implies the
    index's WHERE: PostgreSQL cannot for a generic plan of a prepared statement, SQLite
    never can for a bound parameter. Only for constants of the code (statuses, the overdue
    rule's reason), never for what a user typed.
    """
    def literal(element):
        if isinstance(element, BindParameter):
            value = element.value
            if isinstance(value, str) or (
                    element.expanding and isinstance(value, (list, tuple))
                    and all(isinstance(v, str) for v in value)):
                return bindparam(None, value, type_=element.type, expanding=element.expanding,
                                 literal_execute=True)
        return None

    return visitors.replacement_traverse(expression, {}, literal)


def _status_matches(wanted: str | None, status: str) -> bool:
    if wanted is None:
        return True
    if wanted == "open":
        return status in ("new", "in_progress")
    return status == wanted


class FacetCache:
    """Facet counts for a few seconds, per viewer scope and filters.

    Counting every facet reads every visible item (an index-only scan of ``ix_items_facets``:
    tens of milliseconds at 100,000 items, more on a busy machine), and each open queue page
    asks again whenever it is loaded. The counts only guide the choice of a filter, so they
    may lag the list by ``seconds``; the list and its total are always read fresh.
    """

    def __init__(self, seconds: float, clock) -> None:
        self.seconds = seconds
        self._clock = clock
        self._entries: dict[tuple, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, compute):
        if self.seconds <= 0:
            return compute()
        now = self._clock()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and now - hit[0] < self.seconds:
                return hit[1]
        value = compute()
        with self._lock:
            if len(self._entries) > 1000:  # many filter combinations: start over
                self._entries.clear()
            self._entries[key] = (now, value)
        return value


def read_queue(store: ModerationStore, viewer: User, filters: ItemFilter | None = None,
               limit: int = 50, offset: int = 0, page_limit: int = 500, *,
               facets: bool = True, cache: FacetCache | None = None) -> QueuePage:
    """The queue as ``viewer`` may see it: overdue unanswered questions first, then the
    oldest first; the total and (``facets``) the facet counts, see the module docstring.

    Without ``facets`` (the live fragment) the counts and the page facet are empty.
    """
    filters = filters or ItemFilter()
    limit = max(0, min(int(limit), 1000))
    offset = max(0, int(offset))
    now = store.clock()
    c = ITEMS.c
    scope = store._scope(viewer)
    where = scope + store._conditions(filters, now)
    if filters.status in KNOWN_STATUSES:
        status_only = ItemFilter(status=filters.status)
        where = (scope + store._conditions(replace(filters, status=None), now)
                 + [inline_constants(cond) for cond in store._conditions(status_only, now)])
    # what the status, reason and municipality facets never skip: scope, page, ages, text
    shared = scope + store._conditions(
        replace(filters, status=None, reason=None, municipality=None), now)
    overdue = inline_constants(store._overdue_expr(now))
    groups_query = (select(c.status, c.reason, c.municipality, func.count())
                    .where(*shared)
                    .group_by(c.municipality, c.status, c.reason))
    pages_query = (select(c.page_id, func.max(c.page_name), func.count())
                   .where(*scope, *store._conditions(replace(filters, page_id=None), now))
                   .group_by(c.page_id)
                   .order_by(func.count().desc(), c.page_id)
                   .limit(page_limit))
    count_query = select(func.count()).select_from(ITEMS).where(*where)
    with store._read() as conn:
        ids = _ordered_ids(conn, where, overdue, limit, offset,
                           overdue_possible=filters.status != "resolved")
        total = int(conn.execute(count_query).scalar_one())
        details: dict[str, ItemDetail] = {}
        if ids:
            query, _ = store._item_query(now)
            for row in conn.execute(query.where(c.flag_id.in_(ids))):
                detail = store._detail(row)
                details[detail.flag_id] = detail
    items = [details[i] for i in ids if i in details]
    if not facets:
        return QueuePage(page=ItemPage(items=items, total=total, counts={}), pages=[])

    def counted():
        with store._read() as conn:
            groups = conn.execute(groups_query).all()
            pages = [(page_id, name, int(n)) for page_id, name, n in conn.execute(pages_query)]
        return facet_counts(groups, filters), pages

    visible = store.visible_municipalities(viewer)
    key = (None if visible is None else tuple(sorted(visible)), filters)
    counts, pages = cache.get(key, counted) if cache is not None else counted()
    return QueuePage(page=ItemPage(items=items, total=total, counts=counts), pages=pages)


def _ordered_ids(conn, where: list, overdue, limit: int, offset: int, *,
                 overdue_possible: bool = True) -> list[str]:
    """The flag ids of one page in queue order: ``ORDER BY (overdue first), created_at,
    flag_id LIMIT limit OFFSET offset``, as two index-ordered reads that stop at the page.

    (a) the overdue rows from ``offset``; if they end before the page is full, (b) the rest:
    from its start when (a) returned rows (the overdue part ended on this page), else from
    ``offset`` minus the number of overdue rows, which then all lie before ``offset`` (so
    counting them reads at most ``offset`` index entries).
    """
    c = ITEMS.c
    if limit <= 0:
        return []
    ids: list[str] = []
    rest_offset = offset
    if overdue_possible:
        ids = list(conn.execute(
            select(c.flag_id).where(*where, overdue).order_by(c.created_at, c.flag_id)
            .limit(limit).offset(offset)).scalars())
        if len(ids) == limit:
            return ids
        if ids:
            rest_offset = 0
        elif offset:
            before = select(c.flag_id).where(*where, overdue).limit(offset).subquery()
            rest_offset -= int(conn.execute(select(func.count()).select_from(before)).scalar_one())
    ids += conn.execute(
        select(c.flag_id).where(*where, ~overdue).order_by(c.created_at, c.flag_id)
        .limit(limit - len(ids)).offset(rest_offset)).scalars()
    return ids


def facet_counts(groups, filters: ItemFilter) -> dict[str, dict[str, int]]:
    """Facet counts from (status, reason, municipality, n) groups, each facet under every
    filter but its own (as ``list_items`` counts them)."""
    by_status: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    by_municipality: dict[str, int] = {}
    want_reason, want_municipality = filters.reason, filters.municipality
    for status, reason, municipality, n in groups:
        s_ok = _status_matches(filters.status, status)
        r_ok = want_reason is None or reason == want_reason
        m_ok = want_municipality is None or municipality == want_municipality
        if r_ok and m_ok:
            by_status[status] = by_status.get(status, 0) + n
        if s_ok and m_ok:
            by_reason[reason] = by_reason.get(reason, 0) + n
        if s_ok and r_ok:
            by_municipality[municipality] = by_municipality.get(municipality, 0) + n
    return {"status": by_status, "reason": by_reason, "municipality": by_municipality}
