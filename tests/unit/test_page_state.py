"""PageState: question lifecycle, out-of-order events, duplicates, sweep, spikes, serialisation."""

from __future__ import annotations

import json
import math

import pytest

from streams.tracking.effects import PostSeen, QuestionDeleted
from streams.tracking.page_state import PageState, SpikePolicy
from tests.support.events import HOUR, PAGE, comment, deleted, edited, msk, page_reply, post, restored

T0 = msk("2026-03-03 10:00")
DEADLINE = T0 + 8 * HOUR


def ask(state: PageState, item: str = "1001", at: float = T0, deadline: float = DEADLINE, **kw):
    event = comment(item, at, **kw)
    return event, state.on_comment(event, is_question=True, is_negative=False, deadline_at=deadline)


def say(state: PageState, event, question=False, negative=False, deadline=DEADLINE):
    return state.on_comment(event, is_question=question, is_negative=negative, deadline_at=deadline)


def kinds(effects) -> list[str]:
    return [type(e).__name__ for e in effects]


def roundtrip(state: PageState) -> PageState:
    data = json.loads(json.dumps(state.to_dict()))
    return PageState.from_dict(data, state.spike_policy)


# --- lifecycle ----------------------------------------------------------------------------


def test_question_opens_with_the_callers_deadline():
    state = PageState(PAGE)
    event, effects = ask(state)
    assert kinds(effects) == ["QuestionOpened"]
    opened = effects[0]
    assert (opened.page_id, opened.item_id, opened.thread_id) == (PAGE, "1001", "501")
    assert (opened.asked_at, opened.deadline_at) == (T0, DEADLINE)
    assert opened.text == event.text and opened.url == event.url and opened.reason == "new"
    assert state.snapshot(T0).open_questions == 1


def test_statement_is_not_tracked():
    state = PageState(PAGE)
    assert say(state, comment("1003", T0, "Спасибо!")) == []
    assert state.questions == {}


def test_answer_in_time():
    state = PageState(PAGE)
    q, _ = ask(state)
    effects = say(state, page_reply("1002", T0 + 35 * 60, to=q))
    assert kinds(effects) == ["QuestionAnswered"]
    answered = effects[0]
    assert answered.in_time and answered.outcome == "answered_in_time"
    assert answered.response_seconds == 35 * 60 and answered.answered_at == T0 + 35 * 60
    assert answered.answer_item_id == "1002"
    assert state.snapshot(T0 + HOUR).open_questions == 0


def test_answer_exactly_at_the_deadline_is_in_time():
    state = PageState(PAGE)
    q, _ = ask(state)
    (answered,) = say(state, page_reply("1002", DEADLINE, to=q))
    assert answered.in_time


def test_late_answer_records_response_time():
    state = PageState(PAGE)
    q, _ = ask(state)
    (answered,) = say(state, page_reply("1002", DEADLINE + 60, to=q))
    assert not answered.in_time and answered.outcome == "answered_late"
    assert answered.response_seconds == DEADLINE + 60 - T0


def test_answer_after_overdue_flag_is_late_even_if_its_timestamp_is_earlier():
    state = PageState(PAGE)
    q, _ = ask(state)
    assert kinds(state.sweep(DEADLINE + 1)) == ["QuestionOverdue"]
    # the reply was written before the deadline but reached us after the flag
    (answered,) = say(state, page_reply("1002", DEADLINE - 60, to=q))
    assert answered.outcome == "answered_late"


def test_citizen_reply_does_not_answer():
    state = PageState(PAGE)
    q, _ = ask(state)
    helper = comment(
        "1005", T0 + 60, "Звоните в УК", author="610002", parent="1001", reply_to_user="610001"
    )
    assert say(state, helper) == []
    assert state.snapshot(T0 + 120).open_questions == 1


def test_one_reply_to_the_author_answers_all_their_open_questions_in_the_thread():
    state = PageState(PAGE)
    ask(state, "1001")
    ask(state, "1003", T0 + 60)
    ask(state, "1004", T0 + 60, author="610009")
    effects = say(state, page_reply("1010", T0 + 600, parent=None, reply_to_user="610001"))
    assert [e.item_id for e in effects] == ["1001", "1003"]


def test_telegram_page_answers_by_replying_to_the_message():
    tg = "telegram:-1001234567890"
    state = PageState(tg)
    q = comment("41", T0, page=tg, platform="telegram", thread="40")
    say(state, q, question=True)
    beside = page_reply("42", T0 + 60, page=tg, platform="telegram", thread="40",
                        parent="39", reply_to_user=q.author_id)
    assert say(state, beside) == []
    (answered,) = say(state, page_reply("43", T0 + 120, to=q))
    assert answered.platform == "telegram" and answered.in_time


def test_page_reply_is_not_classified_as_a_question():
    state = PageState(PAGE)
    assert say(state, page_reply("1002", T0, thread="501"), question=True, negative=True) == []
    assert state.questions == {} and state.window == {}


# --- deletes and restores -----------------------------------------------------------------


def test_delete_open_question():
    state = PageState(PAGE)
    q, _ = ask(state)
    effects = state.on_delete(deleted(q), now=T0 + 600)
    assert kinds(effects) == ["QuestionDeleted"]
    assert effects[0].outcome == "deleted" and effects[0].deleted_at == T0 + 600
    assert state.snapshot(T0 + 700).open_questions == 0
    assert state.sweep(DEADLINE + 1) == []  # never overdue


def test_delete_without_date_uses_latest_event_time():
    state = PageState(PAGE)
    q, _ = ask(state)
    say(state, comment("1003", T0 + 300, "Спасибо", author="610002"))
    (effect,) = state.on_delete(deleted(q))
    assert effect.deleted_at == T0 + 300


def test_a_delete_dated_by_a_lagging_clock_is_dated_after_the_pages_latest_event():
    """After a restart the stream clock can lag the page (it is stored on ticks only): the
    deletion is still dated after everything the page showed, so a sweep keeps its tombstone
    and a re-normalised copy of the question does not open it again."""
    state = PageState(PAGE)
    q, _ = ask(state)
    say(state, comment("1003", T0 + 300, "Спасибо", author="610002"))
    for lagging in (0.0, T0 + 100):
        (effect,) = PageState.from_dict(state.to_dict()).on_delete(deleted(q), now=lagging)
        assert effect.deleted_at == T0 + 300
    state.on_delete(deleted(q), now=0.0)
    assert state.deleted_items["1001"] == T0 + 300
    assert state.sweep(T0 + 2 * HOUR) == []
    assert say(state, q, question=True) == [] and state.snapshot(T0 + 2 * HOUR).open_questions == 0


def test_delete_of_answered_question_counts_nothing_more():
    state = PageState(PAGE)
    q, _ = ask(state)
    say(state, page_reply("1002", T0 + 60, to=q))
    assert state.on_delete(deleted(q)) == []


def test_duplicate_delete_is_idempotent():
    state = PageState(PAGE)
    q, _ = ask(state)
    assert kinds(state.apply(deleted(q))) == ["QuestionDeleted"]
    assert state.apply(deleted(q)) == []


def test_reply_to_a_deleted_comment_answers_nothing():
    state = PageState(PAGE)
    q1, _ = ask(state, "1001")
    ask(state, "1003", T0 + 60)  # same author, same thread, still open
    state.on_delete(deleted(q1))
    assert say(state, page_reply("1002", T0 + 600, to=q1)) == []
    assert state.snapshot(T0 + 700).open_questions == 1


def test_restore_counts_the_question_again_and_keeps_its_deadline():
    state = PageState(PAGE)
    q, _ = ask(state)
    state.on_delete(deleted(q))
    effects = say(state, restored(q), question=True, deadline=DEADLINE + 999)
    assert kinds(effects) == ["QuestionOpened"] and effects[0].reason == "restore"
    assert effects[0].deadline_at == DEADLINE
    assert say(state, restored(q), question=True) == []  # a duplicate restore
    assert kinds(state.sweep(DEADLINE)) == ["QuestionOverdue"]


def test_late_new_of_a_deleted_comment_is_ignored():
    state = PageState(PAGE)
    q = comment("1001", T0)
    state.on_delete(deleted(q), now=T0 + 5)  # the delete overtook the new
    assert say(state, q, question=True) == []
    assert state.questions == {}


def test_restore_of_unknown_comment_starts_tracking():
    state = PageState(PAGE)
    effects = say(state, restored(comment("1001", T0)), question=True)
    assert kinds(effects) == ["QuestionOpened"]


def test_deleted_post_is_ignored_by_questions():
    state = PageState(PAGE)
    state.on_post(post("501", T0))
    assert state.apply(deleted(post("501", T0))) == []
    assert state.posts_total == 1


# --- edits --------------------------------------------------------------------------------


def test_edit_turning_a_statement_into_a_question_uses_the_original_time():
    state = PageState(PAGE)
    original = comment("2004", T0, "Ребёнок потерял куртку.", author="620003")
    assert say(state, original) == []
    effects = say(state, edited(original, "Ребёнок потерял куртку. Не находили?"), question=True)
    assert kinds(effects) == ["QuestionOpened"]
    assert effects[0].asked_at == T0 and effects[0].reason == "edit"
    assert effects[0].text.endswith("Не находили?")


def test_edit_turning_a_question_into_a_statement_withdraws_it():
    state = PageState(PAGE)
    q, _ = ask(state)
    say(state, comment("1003", T0 + 600, "Спасибо", author="610002"))
    effects = say(state, edited(q, "Дорогу починили, спасибо."), question=False)
    assert kinds(effects) == ["QuestionWithdrawn"]
    assert effects[0].withdrawn_at == T0 + 600
    assert state.sweep(DEADLINE + 1) == []
    assert state.snapshot(DEADLINE).open_questions == 0
    # ...and a later edit back into a question resumes it
    assert kinds(say(state, edited(q, "А когда починят?"), question=True)) == ["QuestionOpened"]


def test_edit_of_question_text_keeps_it_open_without_effects():
    state = PageState(PAGE)
    q, _ = ask(state)
    assert say(state, edited(q, "Когда же починят дорогу??"), question=True) == []
    assert state.questions["1001"].text == "Когда же починят дорогу??"


def test_duplicate_edit_is_idempotent():
    state = PageState(PAGE)
    original = comment("2004", T0, "Потерял куртку.")
    say(state, original)
    edit = edited(original, "Потерял куртку. Не находили?")
    assert kinds(say(state, edit, question=True)) == ["QuestionOpened"]
    before = state.to_dict()
    assert say(state, edit, question=True) == []
    assert state.to_dict() == before


def test_original_new_arriving_after_its_edit_changes_nothing():
    state = PageState(PAGE)
    original = comment("2004", T0, "Потерял куртку.")
    say(state, edited(original, "Потерял куртку. Не находили?"), question=True)
    assert say(state, original, question=False) == []
    assert state.questions["2004"].is_open


def test_edit_of_answered_question_changes_no_outcome():
    state = PageState(PAGE)
    q, _ = ask(state)
    say(state, page_reply("1002", T0 + 60, to=q))
    assert say(state, edited(q, "Спасибо за ответ"), question=False) == []
    assert say(state, edited(q, "А когда точно?"), question=True) == []


# --- duplicates ---------------------------------------------------------------------------


def test_duplicate_new_question_and_duplicate_answer_are_idempotent():
    state = PageState(PAGE)
    q, _ = ask(state)
    _, again = ask(state)
    assert again == []
    reply = page_reply("1002", T0 + 60, to=q)
    assert kinds(say(state, reply)) == ["QuestionAnswered"]
    before = state.to_dict()
    assert say(state, reply) == []
    assert state.to_dict() == before


def test_duplicate_post_counts_once():
    state = PageState(PAGE)
    effects = state.on_post(post("501", T0))
    assert effects == [PostSeen(PAGE, "vk", "501", T0, 1)]
    assert state.on_post(post("501", T0)) == []
    state.on_post(post("499", T0 - HOUR))  # out of order: counted, last post time kept
    snap = state.snapshot(T0)
    assert (snap.posts_total, snap.last_post_at) == (2, T0)


def test_post_edit_is_not_a_new_post():
    state = PageState(PAGE)
    assert state.on_post(post("501", T0, action="edit")) == []
    assert state.posts_total == 0


# --- out of order ---------------------------------------------------------------------------


def test_reply_before_question_event_answers_when_the_question_arrives():
    state = PageState(PAGE)
    q = comment("1001", T0)
    assert say(state, page_reply("1002", T0 + 300, to=q)) == []
    effects = say(state, q, question=True)
    assert kinds(effects) == ["QuestionOpened", "QuestionAnswered"]
    assert effects[1].in_time and effects[1].response_seconds == 300
    assert state.snapshot(T0 + 400).open_questions == 0


def test_remembered_reply_older_than_the_question_does_not_answer_it():
    state = PageState(PAGE)
    say(state, page_reply("1002", T0 - 300, parent=None, reply_to_user="610001"))
    _, effects = ask(state)
    assert kinds(effects) == ["QuestionOpened"]
    assert state.snapshot(T0).open_questions == 1


def test_remembered_reply_answers_a_question_made_by_a_later_edit():
    state = PageState(PAGE)
    original = comment("1001", T0, "Дорога разбита.")
    reply = page_reply("1002", T0 + 600, to=original)
    say(state, original)
    say(state, reply)
    effects = say(state, edited(original, "Дорога разбита. Когда починят?"), question=True)
    assert kinds(effects) == ["QuestionOpened", "QuestionAnswered"]


def test_remembered_replies_are_bounded():
    state = PageState(PAGE, max_remembered_replies=3)
    for i in range(10):
        say(state, page_reply(str(900 + i), T0 + i, parent=str(i), reply_to_user="1"))
    assert list(state.remembered_replies) == ["907", "908", "909"]


def test_deleted_items_are_bounded():
    state = PageState(PAGE, max_deleted_items=2)
    for i in range(5):
        state.on_delete(deleted(comment(str(i), T0)), now=T0)
    assert list(state.deleted_items) == ["3", "4"]


# --- sweep ----------------------------------------------------------------------------------


def test_overdue_flag_exactly_once_even_across_roundtrips():
    state = PageState(PAGE)
    ask(state)
    assert state.sweep(DEADLINE - 1) == []
    effects = state.sweep(DEADLINE)
    assert kinds(effects) == ["QuestionOverdue"]
    assert effects[0].age_seconds == 8 * HOUR and effects[0].question.overdue_flagged
    state = roundtrip(state)
    assert state.sweep(DEADLINE + HOUR) == []
    state = roundtrip(state)
    assert state.sweep(DEADLINE + 2 * HOUR) == []
    snap = state.snapshot(DEADLINE + 2 * HOUR)
    assert (snap.open_questions, snap.overdue_questions, snap.oldest_open_asked_at) == (1, 1, T0)


def test_overdue_then_deleted_then_restored_is_not_flagged_again():
    state = PageState(PAGE)
    q, _ = ask(state)
    state.sweep(DEADLINE)
    state.on_delete(deleted(q))
    say(state, restored(q), question=True)
    assert state.sweep(DEADLINE + HOUR) == []


def test_sweep_prunes_closed_questions_after_retention():
    state = PageState(PAGE)
    q, _ = ask(state)
    say(state, page_reply("1002", T0 + 60, to=q))
    state.on_delete(deleted(comment("1003", T0)), now=T0 + 60)
    state.sweep(T0 + 60 + 7 * 86400)
    assert "1001" in state.questions  # exactly at retention: kept
    state.sweep(T0 + 61 + 7 * 86400)
    assert state.questions == {} and state.deleted_items == {} and state.remembered_replies == {}


def test_sweep_with_custom_retention():
    state = PageState(PAGE)
    q, _ = ask(state)
    state.on_delete(deleted(q), now=T0 + 10)
    state.sweep(T0 + 20, retention_seconds=5)
    assert state.questions == {}


def test_open_question_expires_after_open_retention():
    state = PageState(PAGE)
    ask(state)
    effects = state.sweep(T0 + 31 * 86400, open_retention_seconds=30 * 86400)
    assert kinds(effects) == ["QuestionOverdue", "QuestionExpired"]
    assert state.questions == {}


def test_sweep_orders_overdue_flags_by_asked_at():
    state = PageState(PAGE)
    ask(state, "2", T0 + 60, deadline=T0 + 100)
    ask(state, "1", T0, deadline=T0 + 200)
    assert [e.item_id for e in state.sweep(T0 + 300)] == ["1", "2"]


# --- negative spikes ---------------------------------------------------------------------------

POLICY = SpikePolicy(window_seconds=3600, min_negative=5, min_share=0.5)


def complain(state: PageState, i: int, at: float, negative: bool = True):
    event = comment(f"c{i}", at, "Опять нет отопления!", author=str(700000 + i))
    return say(state, event, negative=negative)


def test_spike_starts_once_at_the_threshold():
    state = PageState(PAGE, POLICY)
    effects = []
    for i in range(4):
        effects += complain(state, i, T0 + i * 60)
    effects += complain(state, 90, T0 + 300, negative=False)
    assert effects == []
    spike = complain(state, 4, T0 + 360)  # 5 negative of 6
    assert kinds(spike) == ["NegativeSpike"]
    s = spike[0]
    assert (s.negative_count, s.comments_in_window, s.share) == (5, 6, 5 / 6)
    assert (s.window_start, s.window_end, s.item_id) == (T0 + 360 - 3600, T0 + 360, "c4")
    assert s.negative_item_ids == ("c0", "c1", "c2", "c3", "c4")
    for i in range(5, 12):
        assert complain(state, i, T0 + 400 + i) == []  # same episode
    assert state.snapshot(T0 + 500).spike_active


def test_spike_needs_both_count_and_share():
    state = PageState(PAGE, POLICY)
    for i in range(6):
        complain(state, 100 + i, T0 + i, negative=False)
    effects = []
    for i in range(5):
        effects += complain(state, i, T0 + 10 + i)  # 5 negative of 11: share 0.45
    assert effects == []
    assert kinds(complain(state, 5, T0 + 20)) == ["NegativeSpike"]  # 6 of 12 = 0.5


def test_old_comments_leave_the_window():
    state = PageState(PAGE, POLICY)
    for i in range(4):
        complain(state, i, T0 + i)
    # one hour after the first complaint it is out of the window (window is (end-3600, end])
    assert complain(state, 4, T0 + 3600) == []
    snap = state.snapshot(T0 + 3600)
    assert (snap.negative_count, snap.comments_in_window) == (4, 4)


def test_spike_episode_ends_with_hysteresis_and_a_new_one_can_start():
    state = PageState(PAGE, POLICY)
    for i in range(5):
        complain(state, i, T0 + i)
    assert state.spike_active
    for i in range(3):
        complain(state, 10 + i, T0 + 1800 + i)
    complain(state, 20, T0 + 1810, negative=False)
    # the first five left the window: 3 negatives of 5 (count 3 >= 2.5, share .6 >= .25)
    assert complain(state, 21, T0 + 3610, negative=False) == []
    assert state.spike_active
    assert state.snapshot(T0 + 3610).negative_count == 3
    # neutral comments push the share below 0.25: the episode ends at 3 of 13
    ended = []
    for i in range(8):
        ended += complain(state, 30 + i, T0 + 3620 + i, negative=False)
    assert kinds(ended) == ["NegativeSpikeEnded"]
    assert (ended[0].negative_count, ended[0].comments_in_window) == (3, 13)
    assert not state.spike_active
    # later, a fresh spike is a new episode with its own flag
    again = []
    for i in range(5):
        again += complain(state, 50 + i, T0 + 3 * HOUR + i)
    assert kinds(again) == ["NegativeSpike"]


def test_hysteresis_keeps_an_episode_hovering_at_the_threshold():
    state = PageState(PAGE, POLICY)
    for i in range(5):
        complain(state, i, T0 + i * 600)  # 0, 10, 20, 30, 40 min: the spike starts at 5
    assert state.spike_active
    # the first complaint leaves the window: 4 negatives of 5, below the entry threshold
    # but above the exit one (2.5 and 0.25), so the episode goes on
    assert complain(state, 90, T0 + 3600, negative=False) == []
    assert state.snapshot(T0 + 3600).negative_count == 4 and state.spike_active
    # back at 5: the same episode, no second flag
    assert complain(state, 5, T0 + 3700) == []
    assert state.snapshot(T0 + 3700).negative_count == 5


def test_duplicate_negative_comment_is_counted_once():
    state = PageState(PAGE, POLICY)
    for _ in range(5):
        assert complain(state, 1, T0) == []
    assert state.snapshot(T0).negative_count == 1


def test_edit_changes_negativity_in_the_window():
    state = PageState(PAGE, POLICY)
    event = comment("c1", T0, "Всё плохо", author="1")
    say(state, event, negative=True)
    say(state, edited(event, "Всё хорошо"), negative=False)
    assert state.snapshot(T0).negative_count == 0


def test_old_out_of_order_comment_does_not_enter_the_window():
    state = PageState(PAGE, POLICY)
    complain(state, 1, T0 + 2 * HOUR)
    complain(state, 2, T0)  # two hours older than the newest event
    assert state.snapshot(T0 + 2 * HOUR).comments_in_window == 1


def test_spike_policy_validation():
    for bad in ({"window_seconds": 0}, {"min_negative": 0}, {"min_share": 0}, {"min_share": 1.5}):
        with pytest.raises(ValueError):
            SpikePolicy(**bad)


def test_spike_flag_survives_roundtrip():
    state = PageState(PAGE, POLICY)
    for i in range(5):
        complain(state, i, T0 + i)
    state = roundtrip(state)
    assert state.spike_active
    assert complain(state, 5, T0 + 10) == []


# --- snapshot, serialisation, misc -----------------------------------------------------------


def test_snapshot_counts():
    state = PageState(PAGE, POLICY)
    state.on_post(post("501", T0 - HOUR))
    ask(state, "1", T0, deadline=T0 + 60)
    ask(state, "2", T0 + 30, deadline=T0 + 10 * HOUR)
    complain(state, 3, T0 + 40)
    snap = state.snapshot(T0 + 120)
    assert snap.open_questions == 2 and snap.overdue_questions == 1
    assert snap.oldest_open_asked_at == T0
    assert (snap.negative_count, snap.comments_in_window, snap.negative_share) == (1, 3, 1 / 3)
    assert (snap.last_post_at, snap.posts_total, snap.spike_active) == (T0 - HOUR, 1, False)
    empty = PageState(PAGE).snapshot(T0)
    assert empty.oldest_open_asked_at is None and empty.last_post_at is None
    assert empty.negative_share == 0.0


def test_roundtrip_is_exact_and_json_compatible():
    state = PageState(PAGE, POLICY)
    state.on_post(post("501", T0))
    q, _ = ask(state, "1")
    ask(state, "2", T0 + 10)
    say(state, page_reply("9", T0 + 20, to=q))
    state.on_delete(deleted(comment("3", T0)), now=T0 + 30)
    for i in range(6):
        complain(state, 10 + i, T0 + 40 + i)
    state.sweep(DEADLINE + 20)
    data = state.to_dict()
    assert json.loads(json.dumps(data)) == data
    again = roundtrip(state)
    assert again.to_dict() == data
    assert again.snapshot(DEADLINE) == state.snapshot(DEADLINE)


def test_from_dict_rejects_unknown_version():
    data = PageState(PAGE).to_dict()
    data["version"] = 99
    with pytest.raises(ValueError, match="version"):
        PageState.from_dict(data)


def test_event_of_another_page_is_rejected():
    with pytest.raises(ValueError, match="page"):
        PageState(PAGE).on_comment(comment("1", T0, page="vk:-2000002"), True, False, DEADLINE)


def test_apply_routes_by_kind_and_action():
    state = PageState(PAGE)
    assert kinds(state.apply(post("501", T0))) == ["PostSeen"]
    q = comment("1", T0)
    assert kinds(state.apply(q, is_question=True, deadline_at=DEADLINE)) == ["QuestionOpened"]
    (effect,) = state.apply(deleted(q), now=T0 + 99)
    assert isinstance(effect, QuestionDeleted) and effect.deleted_at == T0 + 99


# --- the spike window kept by time, without a scan per comment ----------------------------


def test_window_counts_match_a_rebuild_from_scratch_with_late_comments_edits_and_restarts():
    """The window is pruned by a time heap and its negatives counted as entries change; after
    every comment it must equal the rule applied from scratch to every comment so far (the
    newest version of each item, dated after the window start), also across a to_dict
    round trip (a worker restart) in the middle."""
    import random

    rng = random.Random(7)
    policy = SpikePolicy(window_seconds=HOUR, min_negative=3, min_share=0.5)
    state = PageState(PAGE, policy)
    newest: dict[str, tuple[float, bool]] = {}
    latest = 0.0
    for i in range(400):
        item = str(rng.randrange(60)) if rng.random() < 0.3 else f"n{i}"  # some are edits
        at = T0 + i * 60 - (rng.random() < 0.2) * rng.uniform(0, 2 * HOUR)  # some are late
        negative = rng.random() < 0.4
        event = comment(item, at) if item not in newest else edited(comment(item, at), f"v{i}")
        state.on_comment(event, is_question=False, is_negative=negative, deadline_at=at + HOUR)
        latest = max(latest, at)
        start = latest - HOUR
        if at > start:
            newest[item] = (at, negative)
        newest = {k: v for k, v in newest.items() if v[0] > start}
        assert {k: (e.created_at, e.negative) for k, e in state.window.items()} == newest
        assert state._window_negative == sum(n for _, n in newest.values())
        if i == 200:
            state = roundtrip(state)


# --- when time alone changes a page (the tick's due index) --------------------------------


def test_next_change_is_the_deadline_then_the_window_exit_then_never():
    state = PageState(PAGE, SpikePolicy(window_seconds=HOUR))
    ask(state, at=T0, deadline=T0 + 2 * HOUR)
    assert state.next_change_at(T0) == T0 + HOUR  # the question leaves the spike window
    assert state.next_change_at(T0 + HOUR) == T0 + 2 * HOUR  # then it falls due
    assert state.next_change_at(T0 + 2 * HOUR) == T0 + 2 * HOUR  # due now: not swept yet
    state.sweep(T0 + 2 * HOUR)
    assert T0 + 2 * HOUR < state.next_change_at(T0 + 2 * HOUR) < T0 + 31 * 86400  # expiry
    say(state, page_reply("2001", T0 + 3 * HOUR, to=comment("1001", T0)))
    state.sweep(T0 + 3 * HOUR)
    assert state.next_change_at(T0 + 4 * HOUR + 1) == float("inf")  # answered, window passed


def test_a_comment_dated_after_the_sweep_time_changes_the_view_at_its_own_time():
    state = PageState(PAGE, SpikePolicy(window_seconds=HOUR))
    say(state, comment("1001", T0 + 600, "Безобразие"), negative=True)
    assert state.next_change_at(T0) == T0 + 600


@pytest.mark.parametrize("seed", range(40))
def test_nothing_a_tick_sees_changes_before_next_change_at(seed):
    """Random pages (questions with deadlines, answers, negatives, deletes, sweeps): between
    `now` and `next_change_at(now)` the snapshot is the same and a sweep has no effects, so a
    tick may skip the page until then."""
    import random
    rng = random.Random(seed)
    state = PageState(PAGE, SpikePolicy(window_seconds=HOUR, min_negative=2, min_share=0.3))
    t = T0
    asked = []
    for n in range(rng.randint(1, 25)):
        t += rng.choice([0, 60, 600, 1800, 3 * HOUR])
        roll = rng.random()
        if roll < 0.4:
            item = str(1000 + n)
            event = comment(item, t, author=str(610000 + rng.randint(0, 3)))
            say(state, event, question=True, negative=rng.random() < 0.5,
                deadline=t + rng.choice([HOUR, 8 * HOUR, 40 * HOUR]))
            asked.append(event)
        elif roll < 0.6 and asked:
            say(state, page_reply(str(5000 + n), t, to=rng.choice(asked)))
        elif roll < 0.7 and asked:
            state.on_delete(deleted(rng.choice(asked), t))
        else:
            say(state, comment(str(3000 + n), t, "Всё плохо"), negative=rng.random() < 0.6)
        if rng.random() < 0.3:
            state.sweep(t - rng.choice([0, 1800, 5 * HOUR]))
    for _ in range(6):
        now = t + rng.choice([-2 * HOUR, -1, 0, 1, 30 * 60, 5 * HOUR, 50 * HOUR, 31 * 86400])
        nxt = state.next_change_at(now)
        assert nxt >= now
        if nxt == now:
            state.sweep(now)
            continue
        end = min(nxt, now + 40 * 86400)
        for later in [now + (end - now) * f for f in (0.001, 0.25, 0.5, 0.999)] + [
                math.nextafter(end, 0) if nxt != math.inf else end]:
            if later < nxt:
                probe = roundtrip(state)
                assert probe.snapshot(later) == state.snapshot(now), (now, later, nxt)
                assert probe.sweep(later) == [], (now, later, nxt)
        state.sweep(now)
