"""The web app's edges: the body cap for chunked bodies, no /metrics on the UI port, the
metrics port of `dozor moderation`, and which client address the login rate limit counts
behind a (trusted or untrusted) reverse proxy — the latter with a real uvicorn."""

from __future__ import annotations

import threading
import urllib.request

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry, Counter

from services.broker import free_port
from services.moderation.service import start_metrics_server, web_server_config
from services.moderation.web.app import MAX_BODY_BYTES, WebConfig, create_app
from services.settings import Settings
from tests.support.observe import wait_for

from tests.support.moderation_web import CALENDAR, make_client, password_of, sign_in, snapshot


def chunks(total: int, size: int = 64 * 1024):
    """A body of `total` bytes sent chunked (no Content-Length)."""
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b"a" * n


def test_a_chunked_body_over_the_cap_is_refused(store, operator_session):
    flag, user, client, csrf = (operator_session.flag, operator_session.user,
                                operator_session.client, operator_session.csrf)
    token = store.create_token(user, "robot")
    before = snapshot(store)

    # the login form, a UI form and an API body, each chunked and 1 byte over 1 MiB
    login = client.post("/login", content=chunks(MAX_BODY_BYTES + 1),
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert login.status_code == 413
    assert "content-length" not in {k.lower() for k in login.request.headers}
    form = client.post(f"/items/{flag['flag_id']}/resolve", content=chunks(MAX_BODY_BYTES + 1),
                       headers={"content-type": "application/x-www-form-urlencoded",
                                "x-csrf-token": csrf})
    assert form.status_code == 413
    assert "Слишком большой запрос." in form.text
    api = client.post(f"/api/v1/items/{flag['flag_id']}/resolve",
                      content=chunks(MAX_BODY_BYTES + 1),
                      headers={"content-type": "application/json",
                               "authorization": f"Bearer {token}"})
    assert api.status_code == 413
    assert api.json() == {"detail": "Слишком большой запрос."}
    assert snapshot(store) == before

    # a chunked body under the cap is read as usual
    body = b'{"resolution": "dismissed", "note": "' + b"x" * 1000 + b'"}'
    ok = client.post(f"/api/v1/items/{flag['flag_id']}/resolve", content=iter([body[:10], body[10:]]),
                     headers={"content-type": "application/json",
                              "authorization": f"Bearer {token}"})
    assert ok.status_code == 200, ok.text
    assert store.get_item(user, flag["flag_id"]).resolution == "dismissed"


def test_the_ui_port_serves_no_metrics(store, make_user):
    registry = CollectorRegistry()
    Counter("dozor_moderation_secret_total", "must not leak", registry=registry).inc()
    client = make_client(store, registry=registry)
    assert client.get("/metrics").status_code == 404
    user = make_user("admin")
    sign_in(client, user.login, password_of(user))
    signed_in = client.get("/metrics")
    assert signed_in.status_code == 404
    assert "dozor_moderation" not in signed_in.text


def test_metrics_are_served_on_their_own_port():
    registry = CollectorRegistry()
    Counter("dozor_moderation_probe_total", "probe", registry=registry).inc(3)
    settings = Settings(metrics_host="127.0.0.1", moderation_metrics_port=0)
    assert Settings.model_fields["moderation_metrics_port"].default == 9466
    server = start_metrics_server(settings, registry)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert "dozor_moderation_probe_total 3.0" in response.read().decode()
    finally:
        server.shutdown()


class Served:
    """The app under a real uvicorn, configured by `web_server_config` from Settings."""

    def __init__(self, app, **settings) -> None:
        self.port = free_port()
        config = web_server_config(app, Settings(moderation_host="127.0.0.1",
                                                 moderation_port=self.port, **settings))
        config.access_log = False
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=20, message="uvicorn started")
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def failed_login(base: str, login: str, forwarded_for: str) -> int:
    """One wrong-password attempt through the login form (double-submit CSRF token)."""
    response = httpx.post(f"{base}/login",
                          data={"login": login, "password": "неверный-пароль", "csrf_token": "t"},
                          headers={"x-forwarded-for": forwarded_for,
                                   "cookie": "dozor_login_csrf=t"}, timeout=10)
    return response.status_code


def limited_app(store):
    return create_app(store, WebConfig(cookie_secure=False, session_hours=12.0,
                                       login_attempts_per_minute=2, calendar=CALENDAR,
                                       facet_cache_seconds=0.0))


@pytest.mark.parametrize("proxies", ["127.0.0.1", "10.0.0.0/8,127.0.0.0/8", "*"])
def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(sqlite_store, proxies):
    with Served(limited_app(sqlite_store), moderation_trusted_proxies=proxies) as base:
        # two failures from one client use up its address's minute ...
        assert failed_login(base, "a1", "203.0.113.7") == 401
        assert failed_login(base, "a2", "203.0.113.7") == 401
        assert failed_login(base, "a3", "203.0.113.7") == 429
        # ... while another client behind the same proxy still may try
        assert failed_login(base, "b1", "198.51.100.9") == 401
        # the proxy appends the address it saw to what the client wrote: with a list of
        # proxies the rightmost address not in it counts; with "*" every hop is believed,
        # so the leftmost (client-written) one counts — "*" only where nothing but the
        # proxy can reach the app
        counted = "198.51.100.9" if proxies != "*" else "203.0.113.7"
        assert failed_login(base, "b2", "203.0.113.7, 198.51.100.9") == (
            401 if counted == "198.51.100.9" else 429)


def test_without_a_trusted_proxy_forwarded_for_is_ignored(sqlite_store):
    assert Settings.model_fields["moderation_trusted_proxies"].default == ""
    with Served(limited_app(sqlite_store), moderation_trusted_proxies="") as base:
        assert failed_login(base, "a1", "203.0.113.7") == 401
        assert failed_login(base, "a2", "203.0.113.8") == 401
        # a client cannot escape the limit by writing another X-Forwarded-For
        assert failed_login(base, "a3", "203.0.113.9") == 429


def test_a_proxy_not_in_the_list_is_not_believed(sqlite_store):
    with Served(limited_app(sqlite_store), moderation_trusted_proxies="10.0.0.1") as base:
        assert failed_login(base, "a1", "203.0.113.7") == 401
        assert failed_login(base, "a2", "203.0.113.8") == 401
        assert failed_login(base, "a3", "203.0.113.9") == 429
