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
* ``operator_session`` — a toxic flag in the queue and an operator signed in to the web app:
  ``.flag``, ``.user``, ``.client``, ``.csrf``.
* ``fresh_database`` — ``fresh_database(dialect)`` → URL of another empty, NOT migrated
  database (dropped at the end); for migration and process tests.
"""

from __future__ import annotations

import itertools
import uuid
from types import SimpleNamespace

import pytest

from services.moderation import db
from services.moderation.migrations import upgrade
from services.moderation.store import ModerationStore
from streams.flags import flag_id as make_flag_id
from tests.support.moderation import START, create_pg_database, drop_pg_database, make_store
from tests.support.moderation_web import make_client, password_of, sign_in


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


@pytest.fixture(params=["postgresql", "sqlite"])
def store(request, _engines) -> ModerationStore:
    """A ModerationStore over PostgreSQL and over SQLite, emptied, with a FakeClock."""
    return make_store(_engines, request.param)


@pytest.fixture
def pg_store(_engines) -> ModerationStore:
    return make_store(_engines, "postgresql")


@pytest.fixture
def sqlite_store(_engines) -> ModerationStore:
    return make_store(_engines, "sqlite")


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


@pytest.fixture
def operator_session(store, make_user, make_flag) -> SimpleNamespace:
    """A toxic flag in the queue and an operator signed in: ``.flag .user .client .csrf``."""
    flag = make_flag("toxic")
    store.upsert_flags([flag])
    user = make_user("operator")
    client = make_client(store)
    csrf = sign_in(client, user.login, password_of(user))
    return SimpleNamespace(flag=flag, user=user, client=client, csrf=csrf)
