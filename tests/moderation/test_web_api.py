"""The moderation web app over PostgreSQL and SQLite: the UI's pages and actions, the API.

Security refusals are in test_web_security.py; the browser in test_web_browser.py.
"""

from __future__ import annotations

import re
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import event

from services.moderation.store import ItemFilter
from services.moderation.web.queries import read_queue
from services.moderation.web.views import read_topic_names
from services.settings import DEFAULT_MODEL_DIR as MODEL_DIR

from tests.support.moderation import START
from tests.support.moderation_web import CALENDAR, make_client, password_of, sign_in


def at_local(text: str) -> float:
    """A unix time from local Moscow time 'YYYY-MM-DD HH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=CALENDAR.zone).timestamp()


def flag_ids_in(html: str) -> list[str]:
    return re.findall(r'data-flag-id="([^"]+)"', html)


def topic_cells(html: str) -> dict[str, str]:
    """flag id → the text of its row's «Тема» cell."""
    rows = re.findall(r'data-flag-id="([^"]+)".*?<td class="topic[^"]*"[^>]*>([^<]*)</td>', html, re.S)
    return dict(rows)


# ------------------------------------------------------------------ the queue page


def test_the_queue_shows_overdue_questions_first_then_the_oldest(store, make_user, make_flag):
    old = make_flag("toxic", created_at=START - 5 * 3600, topic="roads")
    young = make_flag("strongly_negative", created_at=START - 600, topic="unknown_theme")
    overdue = make_flag("unanswered_question", created_at=START - 3600, deadline_at=START - 60)
    not_due = make_flag("unanswered_question", created_at=START - 7200, deadline_at=START + 3600)
    store.upsert_flags([old, young, overdue, not_due])
    user = make_user("operator")
    client = make_client(store, topic_names=read_topic_names(MODEL_DIR))
    sign_in(client, user.login, password_of(user))
    page = client.get("/")
    # the «Тема» column: the model's Russian name, the key when the model has no name, «—»
    assert "<th>Тема</th>" in page.text
    assert topic_cells(page.text) == {old["flag_id"]: "Дороги", young["flag_id"]: "unknown_theme",
                                      overdue["flag_id"]: "—", not_due["flag_id"]: "—"}
    assert flag_ids_in(page.text)[1:] == [
        overdue["flag_id"], old["flag_id"], not_due["flag_id"], young["flag_id"]][1:]
    assert flag_ids_in(page.text)[0] == overdue["flag_id"]
    assert "вопрос без ответа" in page.text and "токсичный комментарий" in page.text
    assert "резкий негатив" in page.text


def test_filters_and_their_counts(store, make_user, make_flag):
    store.upsert_flags(
        [make_flag("toxic", municipality="Сыктывкар", created_at=START - 7200) for _ in range(3)]
        + [make_flag("strongly_negative", municipality="Ухта", page_id="vk:-2",
                     created_at=START - 7200) for _ in range(2)]
    )
    user = make_user("operator")
    client = make_client(store)
    sign_in(client, user.login, password_of(user))
    page = client.get("/", params={"municipality": "Ухта"})
    assert len(flag_ids_in(page.text)) == 2
    # each facet counts under the other filters: both municipalities stay choosable
    assert re.search(r'<option value="Сыктывкар"[^>]*>Сыктывкар \(3\)</option>', page.text)
    assert re.search(r'<option value="Ухта" selected>Ухта \(2\)</option>', page.text)
    assert re.search(r'<option value="strongly_negative"[^>]*>резкий негатив \(2\)</option>', page.text)
    assert re.search(r'<option value="vk:-2"[^>]*>[^<]*\(2\)</option>', page.text)
    by_reason = client.get("/", params={"reason": "toxic"})
    assert len(flag_ids_in(by_reason.text)) == 3
    by_page = client.get("/", params={"page": "vk:-2"})
    assert len(flag_ids_in(by_page.text)) == 2
    young = client.get("/", params={"age": "lt1h"})
    assert flag_ids_in(young.text) == []  # all two hours old
    older = client.get("/", params={"age": "gt1h"})
    assert len(flag_ids_in(older.text)) == 5


def test_a_municipal_moderator_sees_only_their_municipality(store, make_user, make_flag):
    ours = make_flag("toxic", municipality="Ухта")
    theirs = make_flag("toxic", municipality="Сыктывкар")
    store.upsert_flags([ours, theirs])
    user = make_user("municipal", municipalities=["Ухта"])
    client = make_client(store)
    sign_in(client, user.login, password_of(user))
    page = client.get("/")
    assert flag_ids_in(page.text) == [ours["flag_id"]]
    assert "Сыктывкар" not in page.text  # not even as a filter choice
    assert client.get(f"/items/{theirs['flag_id']}").status_code == 404


def test_new_items_reach_the_polled_fragment(store, make_user, make_flag):
    user = make_user("operator")
    client = make_client(store)
    sign_in(client, user.login, password_of(user))
    first = client.get("/queue/rows")
    assert first.status_code == 200 and flag_ids_in(first.text) == []
    version = re.search(r'data-version="([^"]+)"', first.text).group(1)
    flag = make_flag("toxic")
    store.upsert_flags([flag])
    second = client.get("/queue/rows")
    assert flag_ids_in(second.text) == [flag["flag_id"]]
    assert re.search(r'data-version="([^"]+)"', second.text).group(1) != version
    assert "<html" not in second.text  # a fragment, not a page


def test_the_fast_queue_reads_what_list_items_reads(store, make_user, make_flag):
    flags = []
    for n in range(40):
        reason = ("toxic", "strongly_negative", "unanswered_question", "negative_spike")[n % 4]
        flags.append(make_flag(reason, municipality=("Ухта", "Инта", "Печора")[n % 3],
                               page_id=f"vk:-{n % 5}", created_at=START - 600 * n,
                               deadline_at=START - 60 if n % 8 == 2 else START + 3600,
                               text_=f"текст {n} {'дорога' if n % 2 else 'вода'}"))
    # more overdue questions, so that they fill more than one short page: two with the same
    # created_at (flag_id decides), one as young as a non-overdue item, one exactly due now
    tied = START - 50_000
    extra_overdue = [
        make_flag("unanswered_question", municipality="Ухта", created_at=tied,
                  deadline_at=START - 100),
        make_flag("unanswered_question", municipality="Инта", created_at=tied,
                  deadline_at=START - 100),
        make_flag("unanswered_question", municipality="Печора", created_at=START,
                  deadline_at=START - 1),
        make_flag("unanswered_question", municipality="Ухта", created_at=START - 7000,
                  deadline_at=START),
        make_flag("unanswered_question", municipality="Инта", created_at=START - 20_000,
                  deadline_at=START - 3600),
    ]
    # never overdue: a question without a deadline, one resolved after its deadline, and
    # two toxic comments written in the same second as the tied questions
    no_deadline = make_flag("unanswered_question", municipality="Ухта", created_at=tied,
                            details={"asked_at": tied, "deadline_at": None})
    resolved_overdue = make_flag("unanswered_question", municipality="Ухта",
                                 created_at=START - 90_000, deadline_at=START - 80_000)
    same_second = [make_flag("toxic", municipality=m, created_at=tied) for m in ("Ухта", "Инта")]
    store.upsert_flags(flags + extra_overdue + [no_deadline, resolved_overdue] + same_second)
    operator = make_user("operator")
    municipal = make_user("municipal", municipalities=["Ухта", "Инта"])
    store.take(operator, flags[1]["flag_id"])
    store.take(operator, flags[10]["flag_id"])  # an overdue question in work stays first
    store.resolve(operator, flags[4]["flag_id"], "hidden")
    store.resolve(operator, flags[7]["flag_id"], "dismissed")
    store.resolve(operator, resolved_overdue["flag_id"], "answered")
    cases = [ItemFilter(), ItemFilter(status="open"), ItemFilter(status="resolved"),
             ItemFilter(status="new"), ItemFilter(status="in_progress"),
             ItemFilter(status="open", reason="toxic"), ItemFilter(municipality="Инта"),
             ItemFilter(page_id="vk:-2", status="new"), ItemFilter(min_age_seconds=3000),
             ItemFilter(max_age_seconds=9000, status="open"), ItemFilter(query="дорога"),
             ItemFilter(status="in_progress", municipality="Ухта", reason="strongly_negative"),
             ItemFilter(status="open", reason="unanswered_question")]
    pages_checked = 0
    for viewer in (operator, municipal):
        for filters in cases:
            everything = store.list_items(viewer, filters, limit=1000).items
            overdue = sum(1 for item in everything if item.overdue)
            assert all(item.overdue for item in everything[:overdue])  # overdue go first
            for limit, offset in ((50, 0), (7, 0), (7, 14)):
                expected = store.list_items(viewer, filters, limit=limit, offset=offset)
                assert expected.items == everything[offset:offset + limit]
                got = read_queue(store, viewer, filters, limit=limit, offset=offset).page
                assert [i.flag_id for i in got.items] == [i.flag_id for i in expected.items]
                assert got.items == expected.items
                assert got.total == expected.total, filters
                assert got.counts == expected.counts, filters
            # every page of 4 (its borders cut the overdue part and the rest elsewhere than
            # those of 3), a page past the end, and for the default filter and "all" every
            # offset with pages of 3: each start inside the overdue part, at its end, after it
            pages = [(4, offset) for offset in range(0, len(everything) + 4, 4)]
            pages.append((3, len(everything) + 2))
            if filters in (ItemFilter(), ItemFilter(status="open")):
                pages += [(3, offset) for offset in range(len(everything) + 1)]
            for limit, offset in pages:
                got = read_queue(store, viewer, filters, limit=limit, offset=offset,
                                 facets=False).page
                assert [i.flag_id for i in got.items] == [
                    i.flag_id for i in everything[offset:offset + limit]], (filters, limit, offset)
                assert got.items == everything[offset:offset + limit]
                assert got.total == len(everything), filters
                pages_checked += 1
    # the data does what the test is for: for the operator's default filter, overdue items
    # that a page of 3 splits, and pages that start inside the overdue part and end in the rest
    queue = store.list_items(operator, ItemFilter(status="open"), limit=1000).items
    first = [item.flag_id for item in queue if item.overdue]
    assert len(first) == 10 and len(first) % 3 != 0 and len(queue) > 20
    assert {f["flag_id"] for f in extra_overdue} | {flags[10]["flag_id"]} <= set(first)
    assert no_deadline["flag_id"] not in first and resolved_overdue["flag_id"] not in first
    assert pages_checked > 300


def _plan_steps(store, statement: str, parameters, index: str) -> list[str]:
    """The plan of one statement as a list of steps, the way it would read at scale:
    PostgreSQL's node types and index names with sorts and sequential scans priced out (a
    Sort here means "no index gives this order"); SQLite's EXPLAIN QUERY PLAN lines with
    the statement bound to ``index`` (INDEXED BY fails when the index cannot serve it, e.g.
    when its WHERE is not implied). On a table this small either would rather sort."""
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            statement = statement.replace("FROM items", f"FROM items INDEXED BY {index}", 1)
            return [row[-1] for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters)]
        with conn.begin():
            conn.exec_driver_sql("SET LOCAL enable_sort = off")
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            (plan,) = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement,
                                           parameters).scalar_one()
    steps, todo = [], [plan["Plan"]]
    while todo:
        node = todo.pop()
        steps.append(" ".join(filter(None, (node["Node Type"], node.get("Index Name")))))
        todo.extend(node.get("Plans", []))
    return steps


def test_the_default_queue_is_read_in_index_order(store, make_user, make_flag):
    # the partial indexes serve the page's ids in queue order (nothing sorted), which needs
    # the queries' status and "overdue" terms to match the indexes' WHERE as written
    store.upsert_flags(
        [make_flag("toxic", created_at=START - 60 * n) for n in range(30)]
        + [make_flag("unanswered_question", created_at=START - 7200 - n, deadline_at=START - 60)
           for n in range(5)])
    operator = make_user("operator")
    sent: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if " ".join(statement.split()).startswith("SELECT items.flag_id FROM items WHERE"):
            sent.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        page = read_queue(store, operator, ItemFilter(status="open"), limit=10).page
        assert sum(item.overdue for item in page.items) == 5
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert len(sent) == 2  # the overdue questions, then the rest
    overdue_plan = _plan_steps(store, *sent[0], "ix_items_open_questions")
    rest_plan = _plan_steps(store, *sent[1], "ix_items_open")
    if store.engine.dialect.name == "sqlite":
        assert overdue_plan == ["SCAN items USING INDEX ix_items_open_questions"]
        assert rest_plan == ["SCAN items USING COVERING INDEX ix_items_open"]
    else:
        assert overdue_plan == ["Limit", "Index Only Scan ix_items_open_questions"]
        assert rest_plan == ["Limit", "Index Only Scan ix_items_open"]


def test_facet_counts_may_lag_but_the_list_does_not(store, make_user, make_flag):
    user = make_user("operator")
    client = make_client(store, facet_cache_seconds=60)
    store.upsert_flags([make_flag("toxic")])
    sign_in(client, user.login, password_of(user))
    assert "открытые (1)" in client.get("/").text
    store.upsert_flags([make_flag("toxic")])
    page = client.get("/").text
    assert len(flag_ids_in(page)) == 2 and "Найдено: <strong>2</strong>" in page
    assert "открытые (1)" in page  # counted a moment ago: cached


# ------------------------------------------------------------------ an item and its actions


def test_the_item_page_shows_text_thread_scores_deadline_and_history(store, make_user, make_flag):
    # START is Thursday 23:26 in Moscow; due Friday 11:00 = two working hours left
    deadline = at_local("2026-05-29 11:00")
    flag = make_flag("unanswered_question", item_id="501", thread_id="100",
                     text_="Когда починят дорогу на Лесной?", deadline_at=deadline)
    store.upsert_flags([flag])
    store.record_events([
        {"kind": "post", "action": "new", "page_id": flag["page_id"], "item_id": "100",
         "thread_id": "100", "by_page": True, "author_id": "-170001", "text": "Ремонт дорог в июне",
         "url": "https://vk.com/wall-170001_100", "created_at": START - 86400},
        {"kind": "comment", "action": "new", "page_id": flag["page_id"], "item_id": "500",
         "thread_id": "100", "by_page": False, "author_id": "7", "text": "А тротуары?",
         "url": "", "created_at": START - 4000},
        {"kind": "comment", "action": "new", "page_id": flag["page_id"], "item_id": "501",
         "thread_id": "100", "by_page": False, "author_id": "42", "text": flag["text"],
         "url": flag["link"], "created_at": flag["created_at"]},
    ])
    user = make_user("operator")
    client = make_client(store)
    sign_in(client, user.login, password_of(user))
    page = client.get(f"/items/{flag['flag_id']}")
    assert page.status_code == 200
    html = page.text
    assert "Когда починят дорогу на Лесной?" in html
    assert "Ремонт дорог в июне" in html and "А тротуары?" in html
    assert "вопрос без ответа" in html
    assert "осталось 2 ч рабочего времени" in html
    assert f'href="{flag["link"]}" target="_blank" rel="noopener noreferrer"' in html.replace("&amp;", "&")
    assert "поставлен в очередь" in html  # the history's first entry
    assert re.search(r"<th>токсичность</th>.*?90%", html, re.S)


def test_take_then_resolve_with_a_note_through_the_forms(store, make_user, make_flag):
    flag = make_flag("toxic")
    store.upsert_flags([flag])
    user = make_user("municipal", municipalities=["Сыктывкар"], display_name="Анна Петрова")
    registry = CollectorRegistry()
    client = make_client(store, registry=registry)
    csrf = sign_in(client, user.login, password_of(user))
    taken = client.post(f"/items/{flag['flag_id']}/take", data={"csrf_token": csrf})
    assert taken.status_code == 303
    assert store.get_item(user, flag["flag_id"]).status == "in_progress"
    resolved = client.post(f"/items/{flag['flag_id']}/resolve",
                           data={"csrf_token": csrf, "resolution": "hidden",
                                 "note": "оскорбление, скрыто"})
    assert resolved.status_code == 303
    item = store.get_item(user, flag["flag_id"])
    assert (item.status, item.resolution, item.resolution_note) == (
        "resolved", "hidden", "оскорбление, скрыто")
    html = client.get(resolved.headers["location"]).text
    assert "Решено." in html
    assert re.search(r"Анна Петрова</td><td>взят в работу", html)
    assert re.search(r"Анна Петрова</td><td>решён: скрыт", html)
    metrics = generate_latest(registry).decode()  # served on the metrics port, not here
    assert 'dozor_moderation_actions_total{action="take"} 1.0' in metrics
    assert 'dozor_moderation_actions_total{action="resolve"} 1.0' in metrics
    # resolving twice is a conflict, not a second resolution
    again = client.post(f"/items/{flag['flag_id']}/resolve",
                        data={"csrf_token": csrf, "resolution": "dismissed", "note": ""})
    assert again.status_code == 409
    assert "уже решён" in again.text


def test_keyboard_actions_get_json_answers(operator_session):
    flag, client, csrf = operator_session.flag, operator_session.client, operator_session.csrf
    headers = {"X-Dozor-Fetch": "1"}
    ok = client.post(f"/items/{flag['flag_id']}/take", data={"csrf_token": csrf}, headers=headers)
    assert ok.status_code == 200 and ok.json()["message"] == "Взято в работу."
    done = client.post(f"/items/{flag['flag_id']}/resolve", headers=headers,
                       data={"csrf_token": csrf, "resolution": "answered", "note": "ответили"})
    assert done.json()["message"] == "Решено."
    conflict = client.post(f"/items/{flag['flag_id']}/take", data={"csrf_token": csrf},
                           headers=headers)
    assert conflict.status_code == 409 and conflict.json()["detail"] == "Элемент уже решён."


def test_model_error_feedback_stores_the_right_labels(store, make_user, make_flag):
    flag = make_flag("toxic", scores={"toxic": 0.91, "negative": 0.2, "question": 0.7})
    store.upsert_flags([flag])
    user = make_user("operator")
    client = make_client(store)
    csrf = sign_in(client, user.login, password_of(user))
    page = client.get(f"/items/{flag['flag_id']}").text
    # the form starts from the model's opinion (above 0.5): question and toxic ticked
    assert re.search(r'name="question" value="1" checked', page)
    assert re.search(r'name="toxic" value="1" checked', page)
    assert not re.search(r'name="negative" value="1" checked', page)
    sent = client.post(f"/items/{flag['flag_id']}/feedback",
                       data={"csrf_token": csrf, "question": "1", "note": "это вопрос, не грубость"})
    assert sent.status_code == 303
    (fb,) = store.feedback_for_export()
    assert (fb.question, fb.negative, fb.toxic, fb.note) == (1, 0, 0, "это вопрос, не грубость")
    assert "модель ошиблась" in client.get(f"/items/{flag['flag_id']}").text


# ------------------------------------------------------------------ users (admins)


def test_admins_add_and_disable_users(store, make_user):
    admin = make_user("admin")
    client = make_client(store)
    csrf = sign_in(client, admin.login, password_of(admin))
    added = client.post("/users", data={
        "csrf_token": csrf, "login": "ivanova", "display_name": "Иванова", "role": "municipal",
        "municipalities": "Ухта, Сосногорск", "password": "длинный-пароль-1"})
    assert added.status_code == 303
    user = store.get_user("ivanova")
    assert (user.role, user.municipalities) == ("municipal", ("Сосногорск", "Ухта"))
    assert "ivanova" in client.get("/users").text
    other = make_client(store)
    sign_in(other, "ivanova", "длинный-пароль-1")
    disabled = client.post("/users/disable", data={"csrf_token": csrf, "login": "ivanova"})
    assert disabled.status_code == 303
    assert store.get_user("ivanova").disabled
    # the disabled user's open session ends at once
    assert 'name="password"' in other.get("/").text


def test_users_page_is_for_admins_only(store, make_user):
    user = make_user("operator")
    client = make_client(store)
    csrf = sign_in(client, user.login, password_of(user))
    assert client.get("/users").status_code == 403
    refused = client.post("/users", data={"csrf_token": csrf, "login": "x", "role": "admin",
                                          "password": "длинный-пароль-1"})
    assert refused.status_code == 403
    assert store.get_user("x") is None


def test_logout_ends_the_session(store, make_user):
    user = make_user("operator")
    client = make_client(store)
    csrf = sign_in(client, user.login, password_of(user))
    cookie = client.cookies.get("dozor_session")
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert store.session(cookie) is None
    client.cookies.clear()
    again = client.get("/", headers={"Cookie": f"dozor_session={cookie}"})
    assert 'name="password"' in again.text and "Сессия истекла или завершена" in again.text


# ------------------------------------------------------------------ the HTTP API


def test_api_items_detail_and_workflow(store, make_user, make_flag):
    flags = [make_flag("toxic", municipality="Ухта", topic="waste") for _ in range(3)]
    other = make_flag("toxic", municipality="Сыктывкар")
    store.upsert_flags(flags + [other])
    user = make_user("municipal", municipalities=["Ухта"])
    token = store.create_token(user, "бот")
    client = make_client(store)
    auth = {"Authorization": f"Bearer {token}"}

    me = client.get("/api/v1/me", headers=auth).json()
    assert (me["login"], me["role"], me["municipalities"]) == (user.login, "municipal", ["Ухта"])

    listed = client.get("/api/v1/items", headers=auth, params={"limit": 2}).json()
    assert listed["total"] == 3 and len(listed["items"]) == 2
    assert listed["counts"]["municipality"] == {"Ухта": 3}
    assert listed["items"][0]["reason_name"] == "токсичный комментарий"
    assert listed["items"][0]["topic"] == "waste"
    rest = client.get("/api/v1/items", headers=auth, params={"limit": 2, "offset": 2}).json()
    assert {i["flag_id"] for i in listed["items"] + rest["items"]} == {f["flag_id"] for f in flags}

    fid = flags[0]["flag_id"]
    taken = client.post(f"/api/v1/items/{fid}/take", headers=auth)
    assert taken.status_code == 200 and taken.json()["status"] == "in_progress"
    released = client.post(f"/api/v1/items/{fid}/release", headers=auth)
    assert released.json()["status"] == "new"
    resolved = client.post(f"/api/v1/items/{fid}/resolve", headers=auth,
                           json={"resolution": "dismissed", "note": "не нарушение"})
    body = resolved.json()
    assert (body["status"], body["resolution"], body["resolution_note"]) == (
        "resolved", "dismissed", "не нарушение")
    assert [h["action"] for h in body["history"]] == ["flagged", "take", "release", "resolve"]
    feedback = client.post(f"/api/v1/items/{fid}/feedback", headers=auth,
                           json={"labels": {"question": 0, "negative": 1, "toxic": 0}})
    assert feedback.status_code == 200 and feedback.json()["negative"] == 1

    detail = client.get(f"/api/v1/items/{fid}", headers=auth).json()
    assert detail["history"][-1]["action"] == "model_error"
    assert detail["thread"] == []
    assert detail["topic"] == "waste"
    resolved_list = client.get("/api/v1/items", headers=auth, params={"status": "resolved"}).json()
    assert [i["flag_id"] for i in resolved_list["items"]] == [fid]

    conflict = client.post(f"/api/v1/items/{fid}/resolve", headers=auth,
                           json={"resolution": "hidden"})
    assert conflict.status_code == 409 and conflict.json() == {"detail": "Элемент уже решён."}
    bad = client.post(f"/api/v1/items/{flags[1]['flag_id']}/resolve", headers=auth,
                      json={"resolution": "answered_by_page"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("Неверные параметры")
    assert store.get_item(user, flags[1]["flag_id"]).status == "new"


def test_openapi_schema_and_docs_are_served(store, make_user):
    client = make_client(store)
    schema = client.get("/api/v1/openapi.json").json()
    assert set(schema["paths"]) == {
        "/api/v1/me", "/api/v1/items", "/api/v1/items/{flag_id}",
        "/api/v1/items/{flag_id}/take", "/api/v1/items/{flag_id}/release",
        "/api/v1/items/{flag_id}/resolve", "/api/v1/items/{flag_id}/feedback"}
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    item = schema["components"]["schemas"]["ItemOut"]["properties"]
    assert item["status"]["enum"] == ["new", "in_progress", "resolved"]
    assert "topic" in schema["components"]["schemas"]["ItemOut"]["required"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and "/api/v1/items/{flag_id}/resolve" in docs.text
    assert "cdn" not in docs.text.lower()


def test_api_filters_match_the_store(store, make_user, make_flag):
    store.upsert_flags([make_flag("toxic", created_at=START - 10 * 3600),
                        make_flag("strongly_negative", created_at=START - 600,
                                  text_="Позор администрации")])
    user = make_user("operator")
    token = store.create_token(user, "t")
    client = make_client(store)
    auth = {"Authorization": f"Bearer {token}"}
    found = client.get("/api/v1/items", headers=auth, params={"q": "позор"}).json()
    assert [i["text"] for i in found["items"]] == ["Позор администрации"]
    old = client.get("/api/v1/items", headers=auth, params={"min_age_seconds": 3600}).json()
    assert [i["reason"] for i in old["items"]] == ["toxic"]
    expected = store.list_items(user, ItemFilter(status="open", reason="toxic"))
    by_reason = client.get("/api/v1/items", headers=auth, params={"reason": "toxic"}).json()
    assert by_reason["total"] == expected.total == 1


def test_topic_names_come_from_the_model_folder_of_the_settings(tmp_path):
    from types import SimpleNamespace

    from services.moderation.web.context import WebConfig

    def settings(model):
        return SimpleNamespace(model=str(model), moderation_cookie_secure=True,
                               moderation_session_hours=12.0,
                               moderation_login_attempts_per_minute=5,
                               working_calendar=lambda: CALENDAR)

    names = WebConfig.from_settings(settings(MODEL_DIR)).topic_names
    assert names["roads"] == "Дороги" and names["waste"] == "Мусор и свалки"
    # no topics.json (a model without a topic head, a hub id): no names, the keys are shown
    assert WebConfig.from_settings(settings(tmp_path)).topic_names == {}
    assert WebConfig.from_settings(settings("cointegrated/rubert-tiny2")).topic_names == {}
    (tmp_path / "topics.json").write_text("not json", encoding="utf-8")
    assert read_topic_names(tmp_path) == {}
