"""Replay tests/scenarios/two_days through the pure tracking logic with the oracle labels.

This proves expected.json before the broker test relies on it. Two sweep schedules bracket
what the stream can do: sweeping at every event's time (the stream clock ticking with every
event) and sweeping only at the end; the outcomes are the same, and the only flag that
depends on the schedule is the one listed under `flags_if_swept_before_late_answer`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from streams.normalize.vk import normalize_vk
from streams.tracking.calendar import WorkingCalendar, answer_deadline
from streams.tracking.effects import (
    NegativeSpike,
    NegativeSpikeEnded,
    QuestionAnswered,
    QuestionDeleted,
    QuestionOverdue,
)
from streams.tracking.page_state import PageState, SpikePolicy
from tests.support.scripts import load_script

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "two_days"


def load_scenario():
    lines = (SCENARIO / "events.jsonl").read_text("utf-8").splitlines()
    payloads = [json.loads(line) for line in lines if line]
    labels = json.loads((SCENARIO / "labels.json").read_text("utf-8"))
    registry = yaml.safe_load((SCENARIO / "pages.yaml").read_text("utf-8"))
    pages = {p["page_id"]: p for p in registry["pages"]}
    expected = json.loads((SCENARIO / "expected.json").read_text("utf-8"))
    return payloads, labels, pages, expected


def replay(sweep_every_event: bool):
    payloads, labels, pages, expected = load_scenario()
    calendar = WorkingCalendar.parse(**expected["calendar"])
    policy = SpikePolicy(**expected["spike_policy"])
    states = {page_id: PageState(page_id, policy) for page_id in pages}
    effects = []
    clock = 0.0

    def sweep_all(now):
        for state in states.values():
            effects.extend(state.sweep(now))

    for payload in payloads:
        event = normalize_vk(payload)
        clock = max(clock, event.created_at)
        if sweep_every_event:
            sweep_all(clock)
        page = pages[event.page_id]
        label = labels.get(event.text, {}) if event.text else {}
        is_question = bool(label.get("question")) and not event.by_page
        deadline = 0.0
        if is_question:
            hours, mode = page["answer_deadline_hours"], page["deadline_mode"]
            deadline = answer_deadline(calendar, event.created_at, hours, mode)
        is_negative = bool(label.get("negative"))
        effects.extend(
            states[event.page_id].apply(event, is_question, is_negative, deadline_at=deadline)
        )
    sweep_all(expected["end_at"])
    return states, effects, expected


def flags_of(effects):
    return sorted(
        (
            "unanswered_question" if isinstance(e, QuestionOverdue) else "negative_spike",
            e.page_id,
            e.item_id,
        )
        for e in effects
        if isinstance(e, (QuestionOverdue, NegativeSpike))
    )


def as_keys(flags):
    return sorted((f["reason"], f["page_id"], f["item_id"]) for f in flags)


SCHEDULES = pytest.mark.parametrize(
    "sweep_every_event", [True, False], ids=["sweep-per-event", "sweep-at-end"]
)


@SCHEDULES
def test_outcomes_per_page(sweep_every_event):
    states, effects, expected = replay(sweep_every_event)
    for page_id, want in expected["pages"].items():
        page_effects = [e for e in effects if getattr(e, "page_id", None) == page_id]
        outcomes = [
            e.outcome for e in page_effects if isinstance(e, (QuestionAnswered, QuestionDeleted))
        ]
        snap = states[page_id].snapshot(expected["end_at"])
        got = {
            "answered_in_time": outcomes.count("answered_in_time"),
            "answered_late": outcomes.count("answered_late"),
            "deleted": outcomes.count("deleted"),
            "open": snap.open_questions,
            "overdue": snap.overdue_questions,
            "posts_total": snap.posts_total,
            "last_post_at": snap.last_post_at,
        }
        assert got == want, page_id


@SCHEDULES
def test_questions(sweep_every_event):
    states, effects, expected = replay(sweep_every_event)
    tracked = {f"{q.page_id}/{q.item_id}": q for s in states.values() for q in s.questions.values()}
    assert sorted(tracked) == sorted(expected["questions"])
    outcome_of = {f"{e.page_id}/{e.item_id}": e.outcome for e in effects
                  if isinstance(e, (QuestionAnswered, QuestionDeleted))}
    for key, want in expected["questions"].items():
        q = tracked[key]
        still_open = "open_overdue" if q.deadline_at <= expected["end_at"] else "open"
        got = {
            "outcome": outcome_of.get(key) or still_open,
            "asked_at": q.asked_at,
            "deadline_at": q.deadline_at,
            "answered_at": q.answered_at,
            "answer_item_id": q.answer_item_id,
        }
        assert got == want, key


def test_flags_when_the_clock_sweeps_with_every_event():
    _, effects, expected = replay(sweep_every_event=True)
    conditional = expected["flags_if_swept_before_late_answer"]
    assert flags_of(effects) == as_keys(expected["flags"] + conditional)


def test_flags_when_swept_only_at_the_end():
    _, effects, expected = replay(sweep_every_event=False)
    assert flags_of(effects) == as_keys(expected["flags"])


def test_spike_is_tipped_by_the_fifth_complaint_in_the_hour():
    _, effects, expected = replay(sweep_every_event=True)
    (spike,) = [e for e in effects if isinstance(e, NegativeSpike)]
    assert (spike.negative_count, spike.comments_in_window) == (5, 6)
    assert spike.negative_item_ids == ("7002", "7003", "7005", "7006", "7007")
    assert spike.window_end == expected["flags"][0]["due_at"]
    (ended,) = [e for e in effects if isinstance(e, NegativeSpikeEnded)]
    assert (ended.page_id, ended.negative_count, ended.comments_in_window) == ("vk:-2000004", 0, 1)


def test_every_comment_text_has_oracle_labels():
    payloads, labels, _, _ = load_scenario()
    texts = {p["object"]["text"] for p in payloads if p["object"].get("text")}
    assert texts == set(labels)


def test_group_id_matches_owner_and_event_ids_are_unique():
    payloads, _, pages, _ = load_scenario()
    assert len({p["event_id"] for p in payloads}) == len(payloads)
    for p in payloads:
        assert p["v"] == "5.199"
        assert p["group_id"] == -p["object"]["owner_id"]
        assert f"vk:{p['object']['owner_id']}" in pages


def test_events_file_is_what_the_generator_writes():
    payloads, labels = load_script(SCENARIO / "make_events.py").build()
    on_disk, disk_labels, _, _ = load_scenario()
    assert payloads == on_disk and labels == disk_labels
