"""How far a clock tick may sweep a page when its partition is fed by several inputs.

The partition clock is the newest event time of any page in the partition. After a restart the
worker normalises each raw partition's backlog in turn, so the events partition can hold page
A's afternoon before page B's morning. A tick that swept B at A's clock flagged B's question
overdue although B's answer was still queued (the crash test of test_tracking_broker.py caught
it now and then). A tick now sweeps a page only as far as its own input has got.
"""

from __future__ import annotations

import json

from streams.classify import Classified
from streams.pages import Page
from streams.track import PageRecord, TrackingPolicy, apply_event, sweep, sweep_time
from streams.tracking.calendar import WorkingCalendar
from streams.tracking.effects import QuestionAnswered, QuestionOverdue
from tests.support.events import comment, msk, page_reply

POLICY = TrackingPolicy(calendar=WorkingCalendar(), default_deadline_hours=4.0)
PAGE_B = Page("vk:-2000003", "vk", "ЦРБ", "Заречный район", "health")


def test_a_tick_sweeps_a_page_no_further_than_its_own_input():
    clocks = {"raw:0": msk("2026-03-04 15:40"), "raw:1": msk("2026-03-04 09:30")}
    now = msk("2026-03-04 15:40")
    assert sweep_time(now, False, "raw:1", clocks) == msk("2026-03-04 09:30")
    assert sweep_time(now, False, "raw:0", clocks) == now
    # an input ahead of the partition clock (clock skew guard) does not lift the page past it
    assert sweep_time(now, False, "raw:0", {"raw:0": now + 3600}) == now
    # nothing read from the page's input yet: the tick leaves the page alone
    assert sweep_time(now, False, "raw:2", clocks) == 0.0


def test_a_trusted_time_or_a_page_without_an_input_is_swept_at_the_partition_clock():
    clocks = {"raw:1": msk("2026-03-04 09:30")}
    now = msk("2026-03-04 18:00")
    assert sweep_time(now, True, "raw:1", clocks) == now  # forced tick / idle partition
    assert sweep_time(now, False, None, clocks) == now  # events without the source header


def test_the_pages_input_travels_with_its_state():
    record = PageRecord.new("vk:-1", 2, POLICY)
    assert PageRecord.from_value(record.to_value(), POLICY).source is None
    record.source = "dozor.raw.vk:3"
    value = record.to_value()
    assert PageRecord.from_value(value, POLICY).source == "dozor.raw.vk:3"
    del value["source"]  # a value stored before this field existed still loads
    assert PageRecord.from_value(value, POLICY).source is None


def test_an_answer_queued_in_a_slower_input_is_not_flagged_overdue():
    """Page B (input raw:1) asked at 09:30 (deadline 13:30) and answered at 10:05; page A's
    input (raw:0) has already reached 15:40 when a tick arrives, before B's answer."""
    record = PageRecord.new(PAGE_B.page_id, 0, POLICY)
    question = comment("3004", msk("2026-03-04 09:30"), "Подскажите, прививку ставят бесплатно?",
                       author="630003", thread="401", page=PAGE_B.page_id)
    apply_event(record, question, Classified(question, {"question": 0.9}, ["question"]), PAGE_B, POLICY)
    clocks = {"raw:0": msk("2026-03-04 15:40"), "raw:1": question.created_at}
    partition_clock = msk("2026-03-04 15:40")

    # the old rule: the whole partition at its clock -> a false overdue flag
    naive = PageRecord.from_value(record.to_value(), POLICY)
    assert any(isinstance(e, QuestionOverdue) for e in sweep(naive, partition_clock))

    # the rule now: B only as far as raw:1 has got, then B's answer, then the day's end
    assert sweep(record, sweep_time(partition_clock, False, "raw:1", clocks)) == []
    answer = page_reply("3007", msk("2026-03-04 10:05"), to=question)
    effects = apply_event(record, answer, Classified(answer, {}, []), PAGE_B, POLICY)
    answered = [e for e in effects if isinstance(e, QuestionAnswered)]
    assert answered and answered[0].outcome == "answered_in_time"
    assert not any(isinstance(e, QuestionOverdue) for e in sweep(record, msk("2026-03-04 18:00")))


def test_the_stored_json_is_the_record_value():
    record = PageRecord.new("vk:-1", 2, POLICY)
    record.applied, record.source = ("dozor.raw.vk:3", 40), "dozor.raw.vk:3"
    assert json.loads(record.to_json()) == record.to_value()
    assert PageRecord.from_json(record.to_json(), POLICY).to_value() == record.to_value()
