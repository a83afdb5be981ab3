"""Refusals of the moderation web app, over PostgreSQL and SQLite: each with the right status
and nothing changed in the database; untrusted text always shown as text."""

from __future__ import annotations

import re

import pytest

from tests.support.moderation_web import FORM_CSRF, make_app, make_client, password_of, sign_in, snapshot

XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
HOSTILE = [
    XSS,
    '"><img src=x onerror=alert(1)>',
    "' OR '1'='1' --",
    "'; DROP TABLE items; --",
    "1; DELETE FROM audit_log",
    "{{7*7}}{% raw %}",
    "%' OR 1=1 --",
    "\\x27 UNION SELECT password_hash FROM users --",
]


def assert_inert(html: str, value: str) -> None:
    """`value` does not appear as markup: every `<` and `"` of it is escaped."""
    if "<" in value or '"' in value:
        assert value not in html, f"{value!r} reached the page unescaped"


# ------------------------------------------------------------------ passwords and sessions


def test_a_wrong_password_is_refused_without_a_session(store, make_user):
    user = make_user("operator")
    client = make_client(store)
    before = snapshot(store)
    token = FORM_CSRF.search(client.get("/").text).group(1)
    refused = client.post("/login", data={"login": user.login, "password": "не тот",
                                          "csrf_token": token})
    assert refused.status_code == 401
    assert "Неверный логин или пароль." in refused.text
    assert "dozor_session" not in refused.headers.get("set-cookie", "")
    assert 'name="password"' in client.get("/").text
    assert snapshot(store) == before


def test_the_login_form_needs_its_csrf_token(store, make_user):
    user = make_user("operator")
    client = make_client(store)
    client.get("/")
    for token in (None, "", "подделка"):
        data = {"login": user.login, "password": password_of(user)}
        if token is not None:
            data["csrf_token"] = token
        refused = client.post("/login", data=data)
        assert refused.status_code == 403
        assert "dozor_session=" not in refused.headers.get("set-cookie", "")


def test_session_cookie_flags_and_security_headers(store, make_user):
    user = make_user("operator")
    client = make_client(store)
    token = FORM_CSRF.search(client.get("/").text).group(1)
    signed = client.post("/login", data={"login": user.login, "password": password_of(user),
                                         "csrf_token": token})
    cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith("dozor_session="))
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=lax" in cookie
    assert "Max-Age=43200" in cookie
    page = client.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    # no inline script anywhere: the CSP would block it, and nothing relies on it
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)


def test_an_expired_session_is_refused(store, operator_session):
    flag, client, csrf = operator_session.flag, operator_session.client, operator_session.csrf
    store.clock.advance(store.session_hours * 3600 + 1)
    before = snapshot(store)
    page = client.get("/")
    assert 'name="password"' in page.text and "Сессия истекла" in page.text
    assert client.get(f"/items/{flag['flag_id']}").status_code == 303
    assert client.get("/queue/rows").status_code == 401
    client.cookies.clear()
    refused = client.post(f"/items/{flag['flag_id']}/take", data={"csrf_token": csrf},
                          headers={"Cookie": "dozor_session=" + "x" * 43})
    assert refused.status_code == 401
    assert snapshot(store) == before


def test_an_expired_session_cannot_act_with_its_own_token(store, operator_session):
    flag, client, csrf = operator_session.flag, operator_session.client, operator_session.csrf
    cookie = client.cookies.get("dozor_session")
    store.clock.advance(store.session_hours * 3600 + 1)
    before = snapshot(store)
    client.cookies.clear()
    refused = client.post(f"/items/{flag['flag_id']}/take", data={"csrf_token": csrf},
                          headers={"Cookie": f"dozor_session={cookie}"})
    assert refused.status_code == 401
    assert snapshot(store) == before


def test_login_attempts_are_limited_per_login_and_per_address(store, make_user):
    user = make_user("operator")
    app = make_app(store, attempts=3)

    def attempt(client, login, password):
        token = FORM_CSRF.search(client.get("/").text).group(1)
        return client.post("/login", data={"login": login, "password": password,
                                           "csrf_token": token})

    # per login: three wrong passwords from three addresses, then even the right one waits
    for n in range(3):
        assert attempt(make_client(store, app=app, address=f"10.0.0.{n}"), user.login,
                       "неверно").status_code == 401
    blocked = attempt(make_client(store, app=app, address="10.0.0.9"), user.login,
                      password_of(user))
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "dozor_session=" not in blocked.headers.get("set-cookie", "")
    store.clock.advance(61)
    assert attempt(make_client(store, app=app, address="10.0.0.9"), user.login,
                   password_of(user)).status_code == 303

    # per address: three logins guessed from one address, then that address waits
    guesser = make_client(store, app=app, address="192.0.2.7")
    for name in ("a", "b", "c"):
        assert attempt(guesser, name, "x").status_code == 401
    assert attempt(guesser, user.login, password_of(user)).status_code == 429
    assert attempt(make_client(store, app=app, address="192.0.2.8"), user.login,
                   password_of(user)).status_code == 303


def test_login_redirects_only_inside_the_site(store, make_user):
    user = make_user("operator")
    client = make_client(store)
    for target, expected in (("//evil.example/x", "/"), ("https://evil.example", "/"),
                             ("/\\evil.example", "/"), ("/items/abc", "/items/abc")):
        client.cookies.clear()
        token = FORM_CSRF.search(client.get("/").text).group(1)
        done = client.post("/login", data={"login": user.login, "password": password_of(user),
                                           "csrf_token": token, "next": target})
        assert done.headers["location"] == expected, target


# ------------------------------------------------------------------ CSRF on every form


def _posts(flag_id: str, login: str) -> list[tuple[str, dict]]:
    return [
        (f"/items/{flag_id}/take", {}),
        (f"/items/{flag_id}/release", {}),
        (f"/items/{flag_id}/resolve", {"resolution": "hidden", "note": "n"}),
        (f"/items/{flag_id}/feedback", {"question": "1", "note": "n"}),
        ("/users", {"login": "newuser", "role": "admin", "password": "длинный-пароль-1"}),
        ("/users/disable", {"login": login}),
        ("/logout", {}),
    ]


@pytest.mark.parametrize("token", ["missing", "empty", "wrong", "other-session"])
def test_every_form_needs_the_sessions_csrf_token(store, make_user, make_flag, token):
    flag = make_flag("toxic")
    store.upsert_flags([flag])
    admin = make_user("admin")
    victim = make_user("operator")
    client = make_client(store)
    sign_in(client, admin.login, password_of(admin))
    other_csrf = sign_in(make_client(store), admin.login, password_of(admin))
    store.take(admin, flag["flag_id"])  # so that release would change something
    before = snapshot(store)
    for path, fields in _posts(flag["flag_id"], victim.login):
        data = dict(fields)
        if token == "empty":
            data["csrf_token"] = ""
        elif token == "wrong":
            data["csrf_token"] = "A" * 43
        elif token == "other-session":
            data["csrf_token"] = other_csrf
        refused = client.post(path, data=data)
        assert refused.status_code == 403, path
        assert "CSRF" in refused.text
    assert snapshot(store) == before
    assert client.get("/").status_code == 200 and "csrf-token" in client.get("/").text


# ------------------------------------------------------------------ hostile text


def test_hostile_comment_text_is_shown_as_text(store, make_user, make_flag):
    flag = make_flag("toxic", text_=XSS + " {{7*7}}", page_name='<b onmouseover="x">Админ</b>',
                     author_id='"><script>alert(2)</script>', municipality="Сыктывкар",
                     link="javascript:alert(3)")
    store.upsert_flags([flag])
    store.record_events([{
        "kind": "comment", "action": "new", "page_id": flag["page_id"], "item_id": "n1",
        "thread_id": flag["thread_id"], "by_page": False, "author_id": "1",
        "text": '<iframe src="https://evil.example"></iframe>', "url": "javascript:alert(4)",
        "created_at": flag["created_at"] - 1}])
    user = make_user("operator")
    client = make_client(store)
    sign_in(client, user.login, password_of(user))
    for html in (client.get("/").text, client.get("/queue/rows").text,
                 client.get(f"/items/{flag['flag_id']}").text):
        assert XSS not in html and "<script>alert(2)" not in html
        assert "<b onmouseover" not in html and "<iframe" not in html
        assert XSS_ESCAPED in html
        assert "49" not in re.sub(r"\d{2,}\.\d", "", html.split("{{7*7}}")[0][-20:])
        assert 'href="javascript:' not in html
    item = client.get(f"/items/{flag['flag_id']}").text
    assert "{{7*7}}" in item  # a template expression in a comment stays text
    assert "&lt;iframe src=&#34;https://evil.example&#34;&gt;&lt;/iframe&gt;" in item


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_filters_find_nothing_and_change_nothing(store, make_user, make_flag, value):
    ours, theirs = make_flag("toxic", municipality="Ухта"), make_flag("toxic", municipality="Коми")
    store.upsert_flags([ours, theirs])
    user = make_user("municipal", municipalities=["Ухта"])
    token = store.create_token(user, "t")
    client = make_client(store)
    sign_in(client, user.login, password_of(user))
    before = snapshot(store)
    for name in ("municipality", "page", "reason", "status", "age", "q", "p"):
        page = client.get("/", params={name: value})
        assert page.status_code == 200, name
        assert_inert(page.text, value)
        assert theirs["flag_id"] not in page.text
        rows = client.get("/queue/rows", params={name: value})
        assert rows.status_code == 200 and theirs["flag_id"] not in rows.text
    for name in ("municipality", "page_id", "reason", "q"):
        api = client.get("/api/v1/items", params={name: value},
                         headers={"Authorization": f"Bearer {token}"})
        assert api.status_code in (200, 422), name  # 422: longer than the parameter allows
        assert theirs["flag_id"] not in api.text
        if api.status_code == 200:
            assert api.json()["total"] in (0, 1)
    assert client.get(f"/items/{value}").status_code in (404, 405)
    assert snapshot(store) == before


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_form_fields_are_stored_verbatim_or_refused(store, make_user, make_flag, value):
    flag = make_flag("toxic")
    store.upsert_flags([flag])
    admin = make_user("admin")
    client = make_client(store)
    csrf = sign_in(client, admin.login, password_of(admin))
    fid = flag["flag_id"]
    before = snapshot(store)

    # refused: unknown resolution, a login that is no login, unknown user, bad login form
    assert client.post(f"/items/{fid}/resolve", data={"csrf_token": csrf, "resolution": value,
                                                      "note": value}).status_code == 422
    assert client.post("/users", data={"csrf_token": csrf, "login": value, "role": "operator",
                                       "password": "длинный-пароль-1"}).status_code == 422
    assert client.post("/users", data={"csrf_token": csrf, "login": "ok", "role": value,
                                       "password": "длинный-пароль-1"}).status_code == 422
    assert client.post("/users/disable", data={"csrf_token": csrf, "login": value}).status_code == 404
    assert client.post(f"/items/{value}/take", data={"csrf_token": csrf}).status_code in (404, 405)
    login_client = make_client(store, address="198.51.100.1")
    token = FORM_CSRF.search(login_client.get("/").text).group(1)
    bad_login = login_client.post("/login", data={"login": value, "password": value,
                                                  "csrf_token": token})
    assert bad_login.status_code == 401
    assert_inert(bad_login.text, value)
    assert snapshot(store) == before

    # accepted: free text is stored as it is and shown as text
    assert client.post(f"/items/{fid}/feedback", data={"csrf_token": csrf, "toxic": "1",
                                                       "note": value}).status_code == 303
    assert client.post(f"/items/{fid}/resolve", data={"csrf_token": csrf, "resolution": "hidden",
                                                      "note": value}).status_code == 303
    item = store.get_item(admin, fid)
    assert item.resolution_note == value.strip()
    assert store.feedback_for_export()[0].note == value.strip()
    html = client.get(f"/items/{fid}").text
    assert_inert(html, value)
    added = client.post("/users", data={"csrf_token": csrf, "login": "safe.login",
                                        "display_name": value, "role": "municipal",
                                        "municipalities": value, "password": "длинный-пароль-1"})
    assert added.status_code == 303
    assert store.get_user("safe.login").display_name == value.strip()
    assert_inert(client.get("/users").text, value)
    # and nothing else was touched: every other item, user and audit row as before
    after = snapshot(store)
    assert len(after["items"]) == len(before["items"])
    assert len(after["audit_log"]) == len(before["audit_log"]) + 2  # model_error, resolve
    assert len(after["users"]) == len(before["users"]) + 1


def test_a_nul_character_is_refused_not_a_server_error(store, make_user, make_flag):
    flag = make_flag("toxic")
    store.upsert_flags([flag])
    user = make_user("operator")
    token = store.create_token(user, "t")
    client = make_client(store)
    csrf = sign_in(client, user.login, password_of(user))
    before = snapshot(store)
    assert client.post(f"/items/{flag['flag_id']}/resolve", data={
        "csrf_token": csrf, "resolution": "hidden", "note": "a\x00b"}).status_code == 422
    api = client.post(f"/api/v1/items/{flag['flag_id']}/resolve",
                      headers={"Authorization": f"Bearer {token}"},
                      json={"resolution": "hidden", "note": "a\x00b"})
    assert api.status_code == 422
    assert client.get("/", params={"q": "a\x00b"}).status_code == 200
    assert client.get("/api/v1/items", params={"q": "a\x00b"},
                      headers={"Authorization": f"Bearer {token}"}).status_code == 422
    assert snapshot(store) == before


# ------------------------------------------------------------------ API tokens


def test_the_api_refuses_missing_wrong_and_disabled_tokens(store, make_user, make_flag):
    flag = make_flag("toxic")
    store.upsert_flags([flag])
    user = make_user("operator")
    good = store.create_token(user, "good")
    revoked = store.create_token(user, "revoked")
    store.disable_token(user, "revoked")
    leaver = make_user("operator")
    leaver_token = store.create_token(leaver, "t")
    store.disable_user(leaver.login)
    client = make_client(store)
    before = snapshot(store)
    fid = flag["flag_id"]
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer nope"},
                    {"Authorization": f"Basic {good}"}, {"Authorization": f"Bearer {revoked}"},
                    {"Authorization": f"Bearer {leaver_token}"}):
        for method, path, body in (("GET", "/api/v1/items", None), ("GET", "/api/v1/me", None),
                                   ("GET", f"/api/v1/items/{fid}", None),
                                   ("POST", f"/api/v1/items/{fid}/take", None),
                                   ("POST", f"/api/v1/items/{fid}/resolve",
                                    {"resolution": "hidden"}),
                                   ("POST", f"/api/v1/items/{fid}/feedback",
                                    {"labels": {"toxic": 0}})):
            response = client.request(method, path, headers=headers, json=body)
            assert response.status_code == 401, (headers, path)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["detail"].startswith("Нужен действующий API-токен")
    assert snapshot(store) == before
    # a session cookie is no API credential
    sign_in(client, user.login, password_of(user))
    assert client.get("/api/v1/items").status_code == 401
    assert client.get("/api/v1/items", headers={"Authorization": f"Bearer {good}"}).status_code == 200


# ------------------------------------------------------------------ other municipalities


def test_another_municipalitys_item_is_not_found_by_ui_or_api(store, make_user, make_flag):
    theirs = make_flag("toxic", municipality="Сыктывкар")
    store.upsert_flags([theirs])
    user = make_user("municipal", municipalities=["Ухта"])
    token = store.create_token(user, "t")
    client = make_client(store)
    csrf = sign_in(client, user.login, password_of(user))
    auth = {"Authorization": f"Bearer {token}"}
    fid = theirs["flag_id"]
    missing = "0" * 24
    before = snapshot(store)

    ui_theirs, ui_missing = client.get(f"/items/{fid}"), client.get(f"/items/{missing}")
    assert ui_theirs.status_code == ui_missing.status_code == 404
    assert fid not in ui_theirs.text
    for action, data in (("take", {}), ("release", {}), ("resolve", {"resolution": "hidden"}),
                         ("feedback", {"toxic": "1"})):
        assert client.post(f"/items/{fid}/{action}", data={"csrf_token": csrf, **data}
                           ).status_code == 404, action
    api_theirs = client.get(f"/api/v1/items/{fid}", headers=auth)
    api_missing = client.get(f"/api/v1/items/{missing}", headers=auth)
    assert api_theirs.status_code == api_missing.status_code == 404
    assert api_theirs.json() == api_missing.json() == {"detail": "Элемент не найден."}
    for action, body in (("take", None), ("release", None),
                         ("resolve", {"resolution": "dismissed"}),
                         ("feedback", {"labels": {"toxic": 1}})):
        assert client.post(f"/api/v1/items/{fid}/{action}", headers=auth, json=body
                           ).status_code == 404, action
    assert client.get("/api/v1/items", headers=auth, params={"municipality": "Сыктывкар"}
                      ).json()["total"] == 0
    assert snapshot(store) == before
