"""Helpers of the moderation web tests: an app over a store fixture, signing in, DB snapshots."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from services.moderation.web.app import WebConfig, create_app
from streams.tracking.calendar import WorkingCalendar

#: The tests' clock starts on a Thursday (2026-05-28 23:26 Moscow); working hours 09-18.
CALENDAR = WorkingCalendar(timezone="Europe/Moscow")
SNAPSHOT_TABLES = ("items", "audit_log", "feedback", "users", "api_tokens", "thread_events")

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
FORM_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_app(store, *, attempts: int = 5, registry: CollectorRegistry | None = None, **config):
    """The app over `store`; facet counts uncached unless `facet_cache_seconds` is given, so
    that a test sees its own writes at once."""
    config.setdefault("facet_cache_seconds", 0.0)
    web_config = WebConfig(cookie_secure=True, session_hours=store.session_hours,
                           login_attempts_per_minute=attempts, calendar=CALENDAR, **config)
    return create_app(store, web_config, registry)


def make_client(store, *, app=None, address: str = "testclient", **kwargs) -> TestClient:
    """A TestClient over https://testserver (so Secure cookies are sent back), from `address`."""
    return TestClient(app or make_app(store, **kwargs), base_url="https://testserver",
                      follow_redirects=False, client=(address, 50000))


def login_form_token(client: TestClient) -> str:
    page = client.get("/")
    assert page.status_code == 200
    return FORM_CSRF.search(page.text).group(1)


def sign_in(client: TestClient, login: str, password: str) -> str:
    """Sign in through the login form; returns the session's CSRF token."""
    token = login_form_token(client)
    response = client.post("/login", data={"login": login, "password": password,
                                           "csrf_token": token})
    assert response.status_code == 303, response.text
    queue = client.get("/")
    assert queue.status_code == 200
    match = CSRF_META.search(queue.text)
    assert match, "the queue page carries the session's CSRF token"
    return match.group(1)


def password_of(user) -> str:
    """The make_user fixture's default password."""
    return f"пароль-{user.login}"


def snapshot(store) -> dict[str, list]:
    """Every row of the tables a refused request must not touch (sessions excluded: logging
    in creates one)."""
    out = {}
    with store.engine.connect() as conn:
        for table in SNAPSHOT_TABLES:
            rows = conn.execute(text(f"SELECT * FROM {table}")).all()
            out[table] = sorted((tuple(map(repr, r)) for r in rows))
    return out
