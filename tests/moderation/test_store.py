"""The moderation store against real PostgreSQL and SQLite (every test runs on both)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text

from services.moderation.errors import InvalidTransition, NotFound, PermissionDenied, UserExists
from services.moderation.store import ItemFilter

from tests.support.moderation import START


def update(flag: dict, kind: str, n: int = 1, **fields) -> dict:
    """A contract-A flag update for `flag`."""
    record = {
        "flag_id": flag["flag_id"], "kind": kind, "page_id": flag["page_id"],
        "item_id": flag["item_id"], "at": START + n, "update_id": f"{flag['flag_id']}-{kind}-{n}",
        "link": None, "text": None, "scores": None, "details": {},
    }
    record.update(fields)
    return record


# ------------------------------------------------------------------ ingest


def test_consuming_the_same_flags_twice_yields_each_item_once(store, make_user, make_flag):
    flags = [make_flag() for _ in range(30)]
    assert store.upsert_flags(flags) == 30
    assert store.upsert_flags(flags + flags[:5]) == 0  # a replay, with duplicates in one batch
    viewer = make_user("operator")
    page = store.list_items(viewer, ItemFilter(), limit=100)
    assert page.total == 30
    assert sorted(i.flag_id for i in page.items) == sorted(f["flag_id"] for f in flags)
    # one "flagged" audit row per item, not one per delivery
    assert [e.action for e in store.history(flags[0]["flag_id"])] == ["flagged"]


def test_a_redelivered_flag_does_not_undo_the_moderators_work(store, make_user, make_flag):
    flag = make_flag()
    store.upsert_flags([flag])
    moderator = make_user("operator")
    store.resolve(moderator, flag["flag_id"], "hidden", "оскорбление")
    store.upsert_flags([dict(flag, text="другой текст")])
    item = store.get_item(moderator, flag["flag_id"])
    assert (item.status, item.resolution, item.text) == ("resolved", "hidden", flag["text"])


def test_flag_fields_are_stored_as_sent(store, make_user, make_flag):
    flag = make_flag("unanswered_question", deadline_at=START - 60, text_="Когда починят дорогу?")
    store.upsert_flags([flag])
    item = store.get_item(make_user("operator"), flag["flag_id"])
    for name in ("reason", "page_id", "page_name", "municipality", "platform", "item_id",
                 "thread_id", "author_id", "text", "link", "created_at", "flagged_at", "scores",
                 "details"):
        assert getattr(item, name) == flag[name], name
    assert item.deadline_at == START - 60
    assert item.status == "new" and item.overdue
    assert item.ingested_at == START
    assert item.topic is None  # make_flag sends no topic, as workers before it did


def test_the_flags_topic_is_kept_and_an_edit_does_not_change_it(store, make_user, make_flag):
    roads = make_flag("toxic", topic="roads")
    none = make_flag("strongly_negative", topic=None)
    old = make_flag("toxic")  # a record of an older worker: no topic field at all
    assert "topic" not in old
    odd = make_flag("toxic", topic=["roads"])  # not a theme key: stored as none
    assert store.upsert_flags([roads, none, old, odd]) == 4
    viewer = make_user("operator")
    topics = {i.flag_id: i.topic for i in store.list_items(viewer, ItemFilter()).items}
    assert topics == {roads["flag_id"]: "roads", none["flag_id"]: None, old["flag_id"]: None,
                      odd["flag_id"]: None}
    store.apply_updates([update(roads, "edited", text="про мусор", scores={"toxic": 0.95}),
                         update(none, "edited", text="про дороги", scores={"negative": 0.9})])
    edited = store.get_item(viewer, roads["flag_id"])
    assert (edited.text, edited.edited, edited.topic) == ("про мусор", True, "roads")
    assert store.get_item(viewer, none["flag_id"]).topic is None
    # a redelivered flag with another topic changes nothing either
    assert store.upsert_flags([dict(roads, topic="waste")]) == 0
    assert store.get_item(viewer, roads["flag_id"]).topic == "roads"


# ------------------------------------------------------------------ workflow and audit


def test_workflow_take_release_resolve_with_audit(store, make_user, make_flag):
    flag = make_flag()
    store.upsert_flags([flag])
    anna = make_user("municipal", ["Сыктывкар"], display_name="Анна")
    fid = flag["flag_id"]

    store.clock.advance(120)
    item = store.take(anna, fid)
    assert (item.status, item.assignee_id, item.assignee_name) == ("in_progress", anna.id, "Анна")
    assert item.first_action_at == START + 120
    assert store.take(anna, fid).status == "in_progress"  # taking one's own item again: no-op

    store.clock.advance(60)
    assert store.release(anna, fid).status == "new"
    assert store.get_item(anna, fid).assignee_id is None

    store.clock.advance(60)
    store.take(anna, fid)
    store.clock.advance(300)
    item = store.resolve(anna, fid, "answered", "  ответили в комментариях  ")
    assert (item.status, item.resolution, item.resolution_note) == ("resolved", "answered",
                                                                    "ответили в комментариях")
    assert item.resolved_at == START + 540 and item.first_action_at == START + 120

    history = store.history(fid)
    assert [(e.action, e.from_status, e.to_status, e.actor_id, e.at) for e in history] == [
        ("flagged", None, "new", None, START),
        ("take", "new", "in_progress", anna.id, START + 120),
        ("release", "in_progress", "new", anna.id, START + 180),
        ("take", "new", "in_progress", anna.id, START + 240),
        ("resolve", "in_progress", "resolved", anna.id, START + 540),
    ]
    assert history[-1].resolution == "answered"
    assert history[-1].note == "ответили в комментариях"
    assert history[-1].actor_name == "Анна"


def test_invalid_transitions_raise_and_change_nothing(store, make_user, make_flag):
    flag = make_flag()
    store.upsert_flags([flag])
    fid = flag["flag_id"]
    anna = make_user("municipal", ["Сыктывкар"])
    boris = make_user("municipal", ["Сыктывкар"])
    operator = make_user("operator")

    with pytest.raises(InvalidTransition):
        store.release(anna, fid)  # not in progress
    with pytest.raises(InvalidTransition):
        store.resolve(anna, fid, "answered_by_page")  # a system resolution
    store.take(anna, fid)
    with pytest.raises(InvalidTransition):
        store.take(boris, fid)  # in another's work
    with pytest.raises(PermissionDenied):
        store.release(boris, fid)
    with pytest.raises(PermissionDenied):
        store.resolve(boris, fid, "hidden")
    assert store.get_item(anna, fid).assignee_id == anna.id
    # an operator may take over
    assert store.resolve(operator, fid, "dismissed", "не нарушение").assignee_id == anna.id
    with pytest.raises(InvalidTransition):
        store.resolve(anna, fid, "hidden")
    with pytest.raises(InvalidTransition):
        store.take(anna, fid)
    with pytest.raises(NotFound):
        store.take(anna, "0" * 24)
    assert [e.action for e in store.history(fid)] == ["flagged", "take", "resolve"]


def test_resolving_a_new_item_takes_it_at_once(store, make_user, make_flag):
    flag = make_flag()
    store.upsert_flags([flag])
    user = make_user("operator")
    item = store.resolve(user, flag["flag_id"], "hidden")
    assert (item.status, item.assignee_id, item.first_action_at) == ("resolved", user.id, START)
    assert store.history(flag["flag_id"])[-1].from_status == "new"


def test_the_audit_log_refuses_update_and_delete_in_the_database(store, make_flag):
    """The trigger of the initial migration (PostgreSQL: plpgsql, SQLite: RAISE(ABORT))."""
    flag = make_flag()
    store.upsert_flags([flag])
    for statement in ("UPDATE audit_log SET note = 'forged'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text(statement))
    if store.engine.dialect.name == "postgresql":
        with pytest.raises(Exception, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text("TRUNCATE audit_log CASCADE"))
    assert [(e.action, e.note) for e in store.history(flag["flag_id"])] == [("flagged", "toxic")]


def test_no_code_path_updates_or_deletes_audit_rows():
    """Besides the trigger: no statement of the service names the audit table in an UPDATE
    or DELETE (the store writes it only through ``insert(AUDIT)``)."""
    root = Path(__file__).resolve().parents[2] / "services" / "moderation"
    offenders = []
    for path in root.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        source = path.read_text(encoding="utf-8")
        for pattern in (r"update\(\s*(AUDIT|db\.AuditLog|AuditLog)", r"(AUDIT|AuditLog(\.__table__)?)\.(update|delete)\(",
                        r"delete\(\s*(AUDIT|db\.AuditLog|AuditLog)", r"(?i)(update|delete\s+from)\s+audit_log"):
            offenders += [f"{path.name}: {m.group(0)}" for m in re.finditer(pattern, source)]
    assert offenders == []


# ------------------------------------------------------------------ scoping and the queue


def test_a_municipal_moderator_sees_only_their_municipalities(store, make_user, make_flag):
    own = [make_flag(municipality="Сыктывкар") for _ in range(3)]
    other = [make_flag(municipality="Ухта", page_id="vk:-170002") for _ in range(2)]
    store.upsert_flags(own + other)
    local = make_user("municipal", ["Сыктывкар"])
    operator = make_user("operator")

    page = store.list_items(local, ItemFilter())
    assert {i.municipality for i in page.items} == {"Сыктывкар"} and page.total == 3
    assert page.counts["municipality"] == {"Сыктывкар": 3}
    # asking for another municipality by filter gives nothing, not the other's items
    assert store.list_items(local, ItemFilter(municipality="Ухта")).total == 0
    fid = other[0]["flag_id"]
    assert store.get_item(local, fid) is None
    for action in (lambda: store.take(local, fid), lambda: store.resolve(local, fid, "hidden"),
                   lambda: store.report_model_error(local, fid, {"toxic": 0})):
        with pytest.raises(NotFound):
            action()
    assert store.get_item(operator, fid).status == "new"
    assert store.list_items(operator, ItemFilter()).counts["municipality"] == {"Сыктывкар": 3, "Ухта": 2}
    assert store.visible_municipalities(local) == {"Сыктывкар"}
    assert store.visible_municipalities(operator) is None


def test_overdue_questions_come_first_then_the_oldest(store, make_user, make_flag):
    old_toxic = make_flag("toxic", created_at=START - 10 * 3600)
    new_toxic = make_flag("toxic", created_at=START - 3600)
    overdue_q = make_flag("unanswered_question", created_at=START - 5 * 3600, deadline_at=START - 60)
    later_q = make_flag("unanswered_question", created_at=START - 2 * 3600, deadline_at=START - 30)
    not_yet_q = make_flag("unanswered_question", created_at=START - 20 * 3600, deadline_at=START + 600)
    store.upsert_flags([new_toxic, later_q, old_toxic, not_yet_q, overdue_q])
    page = store.list_items(make_user("operator"), ItemFilter())
    assert [i.flag_id for i in page.items] == [
        overdue_q["flag_id"], later_q["flag_id"], not_yet_q["flag_id"], old_toxic["flag_id"],
        new_toxic["flag_id"]]
    assert [i.overdue for i in page.items] == [True, True, False, False, False]
    # the clock passes the third question's deadline: it moves up
    store.clock.advance(601)
    assert store.list_items(make_user("operator"), ItemFilter()).items[2].overdue


def test_filters_paging_and_facet_counts(store, make_user, make_flag):
    flags = ([make_flag("toxic", created_at=START - h * 3600) for h in range(1, 6)]
             + [make_flag("strongly_negative", municipality="Ухта", page_id="vk:-2",
                          created_at=START - 30 * 3600, text_="Всё плохо 100% _ok_")])
    store.upsert_flags(flags)
    user = make_user("operator")
    store.take(user, flags[0]["flag_id"])

    assert store.list_items(user, ItemFilter(reason="toxic")).total == 5
    assert store.list_items(user, ItemFilter(status="in_progress")).total == 1
    assert store.list_items(user, ItemFilter(status="open")).total == 6
    assert store.list_items(user, ItemFilter(page_id="vk:-2")).total == 1
    assert store.list_items(user, ItemFilter(min_age_seconds=2.5 * 3600)).total == 4
    assert store.list_items(user, ItemFilter(max_age_seconds=2.5 * 3600)).total == 2
    assert store.list_items(user, ItemFilter(assignee_id=user.id)).total == 1
    # text search: case-insensitive, LIKE wildcards and SQL are just text
    assert store.list_items(user, ItemFilter(query="всё ПЛОХО")).total == 1
    assert store.list_items(user, ItemFilter(query="100%")).total == 1
    assert store.list_items(user, ItemFilter(query="%")).total == 1
    assert store.list_items(user, ItemFilter(query="_")).total == 1
    assert store.list_items(user, ItemFilter(query="' OR 1=1 --")).total == 0
    assert store.list_items(user, ItemFilter(query="'; DROP TABLE items; --")).total == 0
    assert store.list_items(user, ItemFilter()).total == 6

    page = store.list_items(user, ItemFilter(reason="toxic", status="new"), limit=2, offset=1)
    assert page.total == 4 and len(page.items) == 2
    # each facet is counted under the other filters, not its own
    assert page.counts["status"] == {"new": 4, "in_progress": 1}
    assert page.counts["reason"] == {"toxic": 4, "strongly_negative": 1}
    assert page.counts["municipality"] == {"Сыктывкар": 4}


# ------------------------------------------------------------------ updates from the page


def test_an_answered_question_closes_itself(store, make_user, make_flag):
    flag = make_flag("unanswered_question", deadline_at=START - 60)
    store.upsert_flags([flag])
    moderator = make_user("operator")
    store.take(moderator, flag["flag_id"])
    answer = update(flag, "answered", link="https://vk.com/wall-170001_100?reply=9",
                    text="Отремонтируем в мае")
    assert store.apply_updates([answer]) == 1
    item = store.get_item(moderator, flag["flag_id"])
    assert (item.status, item.resolution) == ("resolved", "answered_by_page")
    assert item.answer_link == "https://vk.com/wall-170001_100?reply=9"
    last = store.history(flag["flag_id"])[-1]
    assert (last.action, last.actor_id, last.actor_name, last.from_status, last.to_status) == (
        "auto_close", None, "система", "in_progress", "resolved")
    assert last.note.startswith("отвечено страницей")
    # the same update again (a redelivery) changes nothing and logs nothing
    assert store.apply_updates([answer]) == 0
    assert len(store.history(flag["flag_id"])) == 3


def test_an_update_before_its_flag_waits_for_it(store, make_user, make_flag):
    flag = make_flag("unanswered_question")
    answer = update(flag, "answered", link="https://vk.com/answer")
    assert store.apply_updates([answer]) == 0  # no flag yet: kept, not lost
    assert store.apply_updates([answer]) == 0
    assert store.upsert_flags([flag]) == 1
    item = store.get_item(make_user("operator"), flag["flag_id"])
    assert (item.status, item.resolution, item.answer_link) == (
        "resolved", "answered_by_page", "https://vk.com/answer")
    assert [e.action for e in store.history(flag["flag_id"])] == ["flagged", "auto_close"]
    assert store.upsert_flags([flag]) == 0
    assert [e.action for e in store.history(flag["flag_id"])] == ["flagged", "auto_close"]


def test_flag_and_update_in_one_batch(store, make_user, make_flag):
    flag = make_flag("toxic")
    counts = store.ingest([flag], [update(flag, "edited", text="исправлено", scores={"toxic": 0.1})], [])
    assert counts.flags_new == 1 and counts.updates_applied == {"edited": 1}
    item = store.get_item(make_user("operator"), flag["flag_id"])
    assert (item.text, item.scores, item.edited, item.status) == ("исправлено", {"toxic": 0.1}, True, "new")


def test_deleted_restored_and_spike_ended(store, make_user, make_flag):
    user = make_user("operator")
    new_one, taken = make_flag(), make_flag()
    spike = make_flag("negative_spike")
    store.upsert_flags([new_one, taken, spike])
    store.take(user, taken["flag_id"])
    store.apply_updates([update(new_one, "deleted"), update(taken, "deleted")])
    item = store.get_item(user, new_one["flag_id"])
    assert (item.status, item.resolution, item.deleted_on_page) == ("resolved", "deleted_on_page", True)
    item = store.get_item(user, taken["flag_id"])
    assert (item.status, item.resolution, item.deleted_on_page) == ("in_progress", None, True)

    store.apply_updates([update(new_one, "restored", 2), update(taken, "restored", 2)])
    item = store.get_item(user, new_one["flag_id"])
    assert (item.status, item.resolution, item.deleted_on_page) == ("new", None, False)
    assert not store.get_item(user, taken["flag_id"]).deleted_on_page

    store.apply_updates([update(spike, "spike_ended", details={"negative_count": 2})])
    item = store.get_item(user, spike["flag_id"])
    assert item.details["spike_ended"] == {"at": START + 1, "negative_count": 2}
    assert item.status == "new"
    assert store.history(spike["flag_id"])[-1].action == "spike_ended"
    assert [e.action for e in store.history(new_one["flag_id"])] == ["flagged", "deleted", "restored"]


def test_answered_does_not_close_a_resolved_item_again(store, make_user, make_flag):
    flag = make_flag("unanswered_question")
    store.upsert_flags([flag])
    user = make_user("operator")
    store.resolve(user, flag["flag_id"], "answered", "ответил в личке")
    store.apply_updates([update(flag, "answered", link="https://vk.com/a")])
    item = store.get_item(user, flag["flag_id"])
    assert (item.resolution, item.answer_link) == ("answered", "https://vk.com/a")
    assert store.history(flag["flag_id"])[-1].action == "answered"


def test_a_malformed_update_raises_before_anything_is_written(store, make_flag):
    flag = make_flag()
    store.upsert_flags([flag])
    with pytest.raises((KeyError, ValueError)):
        store.ingest([make_flag()], [update(flag, "exploded")], [])
    assert len(store.history(flag["flag_id"])) == 1


# ------------------------------------------------------------------ threads


def event(item_id, kind="comment", action="new", at=0.0, text_="", thread_id="100", by_page=False):
    return {"event_id": f"e{item_id}{action}", "platform": "vk", "kind": kind, "action": action,
            "page_id": "vk:-170001", "item_id": item_id, "thread_id": thread_id, "parent_id": None,
            "reply_to_user": None, "author_id": "7", "by_page": by_page, "text": text_,
            "created_at": START + at, "url": f"https://vk.com/wall-170001_100?reply={item_id}"}


def test_thread_around_an_item(store, make_user, make_flag):
    events = [event("100", "post", at=-1000, text_="Пост", by_page=True)]
    events += [event(str(i), at=i * 10, text_=f"c{i}") for i in range(1, 13)]
    events += [event("5", action="edit", at=50, text_="c5 исправлен"), event("4", action="delete", at=40),
               event("999", at=5, text_="other thread", thread_id="200")]
    assert store.record_events(events) == 14
    store.record_events(events[:3])  # a replay changes nothing
    flag = make_flag(item_id="6", created_at=START + 60)
    store.upsert_flags([flag])
    item = store.get_item(make_user("operator"), flag["flag_id"])
    thread = store.thread(item, before=3, after=2)
    assert [e.item_id for e in thread] == ["100", "3", "4", "5", "6", "7", "8"]
    assert thread[0].kind == "post" and thread[0].by_page
    assert thread[3].text == "c5 исправлен" and thread[2].deleted and thread[2].text == "c4"

    assert store.prune_thread_events(START + 35) == 5  # the post, comments 1-3, "999"
    assert [e.item_id for e in store.thread(item, before=3, after=0)] == ["4", "5", "6"]


# ------------------------------------------------------------------ feedback


def test_report_model_error_stores_feedback_and_audits(store, make_user, make_flag):
    flag = make_flag(text_="Это просто вопрос")
    store.upsert_flags([flag])
    user = make_user("operator")
    fb = store.report_model_error(user, flag["flag_id"], {"question": 1, "toxic": 0}, "не токсично")
    assert (fb.text, fb.question, fb.negative, fb.toxic, fb.produced) == ("Это просто вопрос", 1, 0, 0, False)
    assert store.history(flag["flag_id"])[-1].action == "model_error"
    assert [f.id for f in store.unproduced_feedback()] == [fb.id]
    store.mark_feedback_produced([fb.id])
    assert store.unproduced_feedback() == []
    # a later correction of the same item replaces the earlier one in the export
    fb2 = store.report_model_error(user, flag["flag_id"], {"negative": 1})
    assert [f.id for f in store.feedback_for_export()] == [fb2.id]
    with pytest.raises(InvalidTransition):
        store.report_model_error(user, flag["flag_id"], {"spam": 1})
    with pytest.raises(InvalidTransition):
        store.report_model_error(user, flag["flag_id"], {"toxic": 7})


# ------------------------------------------------------------------ users, tokens, sessions


def test_users_passwords_tokens_and_sessions(store, make_user):
    user = make_user("municipal", ["Ухта", "Сыктывкар"], login="anna", password="верный пароль")
    assert user.municipalities == ("Сыктывкар", "Ухта")
    with pytest.raises(UserExists):
        store.add_user("anna", "operator", "x")
    with pytest.raises(ValueError):
        store.add_user("boris", "municipal", "x")  # no municipality
    with pytest.raises(ValueError):
        store.add_user("boris", "root", "x")
    assert store.authenticate("anna", "верный пароль") == user
    assert store.authenticate("anna", "неверный") is None
    assert store.authenticate("nobody", "верный пароль") is None
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users WHERE login = 'anna'")).scalar()
    assert stored.startswith("$argon2") and "верный" not in stored

    token = store.create_token(user, "скрипт")
    assert store.user_for_token(token) == user
    assert store.user_for_token(token + "x") is None and store.user_for_token("") is None
    with store.engine.connect() as conn:
        hashes = [r[0] for r in conn.execute(text("SELECT token_hash FROM api_tokens"))]
    assert token not in hashes and len(hashes[0]) == 64

    spare = store.create_token(user, "запасной")
    assert store.disable_token(user, "запасной") == 1
    assert store.user_for_token(spare) is None and store.user_for_token(token) == user

    session_id, csrf = store.create_session(user)
    info = store.session(session_id)
    assert info.user == user and info.csrf_token == csrf
    assert info.expires_at == START + 12 * 3600
    assert store.session_user(session_id) == user
    store.clock.advance(12 * 3600)
    assert store.session_user(session_id) is None  # expired
    assert store.prune_sessions() == 1

    session_id, _ = store.create_session(user)
    store.set_password("anna", "новый пароль")
    assert store.session_user(session_id) is None  # a new password ends the sessions
    assert store.authenticate("anna", "новый пароль") == user

    session_id, _ = store.create_session(user)
    store.end_session(session_id)
    assert store.session_user(session_id) is None

    session_id, _ = store.create_session(user)
    assert store.disable_user("anna").disabled
    assert store.session_user(session_id) is None
    assert store.user_for_token(token) is None
    assert store.authenticate("anna", "новый пароль") is None
    assert [u.login for u in store.list_users()] == ["anna"]
    with pytest.raises(NotFound):
        store.disable_user("nobody")


def test_two_moderators_taking_one_item_at_once_one_wins(store, make_user, make_flag):
    """take() locks the row (PostgreSQL: SELECT … FOR UPDATE; SQLite: BEGIN IMMEDIATE)."""
    import threading

    users = [make_user("operator") for _ in range(4)]
    for _ in range(5):
        flag = make_flag()
        store.upsert_flags([flag])
        barrier = threading.Barrier(len(users))
        outcomes: list[str] = []

        def take(user):
            barrier.wait()
            try:
                store.take(user, flag["flag_id"])
                outcomes.append("took")
            except InvalidTransition:
                outcomes.append("refused")

        threads = [threading.Thread(target=take, args=(u,)) for u in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(outcomes) == ["refused"] * 3 + ["took"]
        assert [e.action for e in store.history(flag["flag_id"])] == ["flagged", "take"]
