"""The worker's batch step in-process, tables as plain dicts (streams/process.py).

The step never writes a table: it returns the records to send and the writes to store after
them. `Worker.batch` applies a batch like the agent does (classify, step, "publish", store);
a crash is a new `Worker` over the tables as they were stored, with a fresh cache.
"""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry

from streams.classify import classify_events
from streams.flags import FlagPolicy, flag_id, update_id
from streams.metrics import DozorMetrics
from streams.pages import Page, PageRegistry
from streams.process import (
    CLASSIFIED,
    EVENTS,
    FLAG_UPDATES,
    FLAGS,
    BatchStep,
    InputRecord,
    Tables,
)
from streams.ticks import Tick
from streams.track import TrackingPolicy
from streams.tracking.calendar import WorkingCalendar
from streams.tracking.page_state import SpikePolicy
from tests.support.events import comment, deleted, edited, msk, page_reply, post, restored
from tests.support.step import store_writes

PAGE = Page("vk:-2000001", "vk", "Школа", "Вербовский МО", "школа",
            answer_deadline_hours=1.0, deadline_mode="plain")
OTHER = Page("vk:-2000003", "vk", "ЦРБ", "Заречный район", "health",
             answer_deadline_hours=1.0, deadline_mode="plain")
REGISTRY = PageRegistry([PAGE, OTHER])
POLICY = TrackingPolicy(calendar=WorkingCalendar(), default_deadline_hours=1.0,
                        spike=SpikePolicy(window_seconds=3600.0, min_negative=3, min_share=0.5))
WALL = msk("2026-03-10 00:00")
#: The oracle model: scores by text; anything else scores 0.
SCORES = {
    "Когда починят дорогу?": {"question": 0.9},
    "Вы все идиоты": {"toxic": 0.9, "negative": 0.95},
    "Всё ужасно": {"negative": 0.9},
    "Плохо": {"negative": 0.7},  # negative, but below the strongly_negative threshold
}


def predict(texts):
    return [{"question": 0.0, "negative": 0.0, "toxic": 0.0, **SCORES.get(t, {})} for t in texts]


def labels_above(scores):
    return [label for label, p in scores.items() if p >= 0.5]


#: The oracle's topic head: a theme key by text; anything else has no topic.
TOPICS = {"Когда починят дорогу?": "roads", "Всё ужасно": "zhkh_heat", "Плохо": "zhkh_heat"}


def predict_with_topics(texts):
    return predict(texts), [TOPICS.get(t) for t in texts]


class Worker:
    """A step over `tables`, fed like the agent feeds it; `store=False` is a crash after the
    sends were acknowledged and before the tables were written. `topics`: the model has a topic
    head (the oracle's TOPICS)."""

    #: The step's cache limit (the `cache_bytes` fixture runs every test with both).
    cache_bytes = 0

    def __init__(self, tables: dict | None = None, wall: float = WALL, topics: bool = False) -> None:
        self.tables = tables if tables is not None else {"pages": {}, "clock": {}}
        self.step = BatchStep(Tables(**self.tables), REGISTRY, POLICY, FlagPolicy(),
                              lambda: wall, clock_idle_seconds=30.0,
                              cache_bytes=self.cache_bytes)
        self.topics = topics

    def batch(self, records: list[InputRecord], store: bool = True):
        before = json.dumps(self.tables, sort_keys=True, default=bytes.decode)
        classified = classify_events(self.step.to_classify(records), predict, labels_above,
                                     predict_with_topics if self.topics else None)
        result = self.step.run(records, classified)
        assert json.dumps(self.tables, sort_keys=True, default=bytes.decode) == before, "the step wrote a table"
        if store:
            store_writes(self.tables, result.writes)
            self.step.stored(result)
        return result


@pytest.fixture(autouse=True, params=[0, 1], ids=["cache-unbounded", "cache-evicts-all"])
def cache_bytes(request, monkeypatch):
    """Every test twice: all page records cached, and none kept once a batch is stored (each
    read goes back to the table, as on RocksDB with a small cache)."""
    monkeypatch.setattr(Worker, "cache_bytes", request.param)
    return request.param


def records(*items, partition: int = 0, start: int = 0, source: str | None = "raw:0"):
    return [InputRecord(partition, start + i, item, source, ref=("ref", partition, start + i))
            for i, item in enumerate(items)]


def sent(result, role: str) -> list[dict]:
    return [json.loads(s.value) for s in result.sends if s.role == role]


def metric(result, name: str, **labels) -> float:
    return sum(c.value for c in result.metrics
               if c.metric == name and all(dict(c.labels).get(k) == v for k, v in labels.items()))


QUESTION = comment("101", msk("2026-03-04 10:00"), "Когда починят дорогу?", author="610001")
TOXIC = comment("102", msk("2026-03-04 10:05"), "Вы все идиоты", author="610002")
NEUTRAL = comment("103", msk("2026-03-04 10:06"), "Спасибо", author="610003")


# --- one batch: sends, then writes ----------------------------------------------------------------


def test_a_batch_sends_classified_comments_and_flags_and_stores_after():
    worker = Worker()
    items = (post("501", msk("2026-03-04 09:00")), QUESTION, TOXIC, NEUTRAL)
    result = worker.batch(records(*items))
    # every event, as read, for the moderation queue's threads; keyed by page
    assert sent(result, EVENTS) == [e.to_dict() for e in items]
    assert {s.key for s in result.sends if s.role == EVENTS} == {PAGE.page_id.encode()}
    assert [c["item_id"] for c in sent(result, CLASSIFIED)] == ["101", "102", "103"]
    flags = sent(result, FLAGS)
    assert sorted(f["reason"] for f in flags) == ["strongly_negative", "toxic"]
    assert {f["flag_id"] for f in flags} == {flag_id(PAGE.page_id, "102", "toxic"),
                                            flag_id(PAGE.page_id, "102", "strongly_negative")}
    assert sent(result, FLAG_UPDATES) == []
    # one write: the page, with its newest applied message and the ids of its events and flags
    assert [(w.table, w.key) for w in result.writes] == [("pages", PAGE.page_id)]
    page_value = json.loads(worker.tables["pages"][PAGE.page_id])
    assert page_value["applied"] == ["raw:0", 3] and page_value["source"] == "raw:0"
    assert list(page_value["seen"]) == [e.event_id for e in (post("501", 0), QUESTION, TOXIC, NEUTRAL)]
    assert set(page_value["sent"]) == {f["flag_id"] for f in flags}
    # the write names the page's newest message, whose changelog partition takes it
    assert result.writes[0].ref == ("ref", 0, 3)
    assert metric(result, "events", kind="comment") == 3 and metric(result, "flags") == 2
    assert metric(result, "comments_classified", label="question") == 1
    assert worker.step.views[PAGE.page_id].snapshot.open_questions == 1


def test_a_batch_re_read_after_its_state_was_stored_sends_nothing():
    worker = Worker()
    batch = records(QUESTION, TOXIC)
    worker.batch(batch)
    for fresh in (worker, Worker(worker.tables)):  # the same worker, and one after a restart
        again = fresh.batch(batch)
        assert again.sends == [] and metric(again, "duplicates") == 2


def test_a_crash_before_the_store_sends_the_same_outputs_again_with_the_same_ids():
    worker = Worker()
    batch = records(QUESTION, TOXIC)
    first = worker.batch(batch, store=False)
    second = Worker(worker.tables).batch(batch)
    assert [s.value for s in second.sends] == [s.value for s in first.sends]


def test_flag_ids_are_remembered_across_a_restart_and_a_copy_sends_no_second_flag():
    worker = Worker()
    worker.batch(records(TOXIC))
    restarted = Worker(worker.tables)
    # a copy of the event in a later message (a connector's second delivery) sends nothing ...
    assert restarted.batch(records(TOXIC, start=5)).sends == []
    # ... and an edit, a new event with a new id, raises no flag the page has sent before
    again = restarted.batch(records(edited(TOXIC, "Вы все идиоты!!"), start=6))
    assert sent(again, FLAGS) == [] and len(sent(again, CLASSIFIED)) == 1


def test_a_pages_remembered_ids_are_forgotten_after_two_weeks_of_stream_time():
    from streams.dedup import RETENTION_SECONDS

    start = QUESTION.created_at
    worker = Worker(wall=start + RETENTION_SECONDS + 3600)  # the late comment is not "future"
    comments = [comment(str(1000 + i), start + i, "Спасибо", author=str(i)) for i in range(30)]
    worker.batch(records(*comments))
    assert len(json.loads(worker.tables["pages"][PAGE.page_id])["seen"]) == 30
    late = comment("2000", start + RETENTION_SECONDS + 100, "Спасибо", author="x")
    worker.batch(records(late, start=30))
    seen = json.loads(worker.tables["pages"][PAGE.page_id])["seen"]
    assert list(seen) == [late.event_id]
    # a forgotten id is new again: a copy older than the retention counts as a new event
    again = Worker(worker.tables, wall=start + RETENTION_SECONDS + 3600).batch(
        records(comments[-1], start=31))
    assert metric(again, "duplicates") == 0


def test_repeats_re_read_after_a_restart_move_the_clock():
    """The clock is stored on ticks only: a worker restarted before a tick re-reads events the
    crashed one had applied. As repeats they send nothing, but they move the clock as they did
    before the crash (else a re-read VK delete, which has no date, is dated by a lagging clock)."""
    worker = Worker()
    worker.batch(records(QUESTION, TOXIC))
    assert worker.tables["clock"] == {}  # no tick yet: the clock was not stored
    restarted = Worker(worker.tables)
    again = restarted.batch(records(QUESTION, TOXIC))
    assert again.sends == [] and metric(again, "duplicates") == 2
    assert restarted.step.clocks.of(0) == TOXIC.created_at
    restarted.batch(records(Tick(WALL), start=2, source=None))  # not trusted: stores the clock
    assert worker.tables["clock"]["0"] == TOXIC.created_at


def test_a_copy_of_an_event_in_another_message_is_dropped():
    worker = Worker()
    worker.batch(records(TOXIC))
    copy = worker.batch(records(TOXIC, start=7))
    assert copy.sends == [] and metric(copy, "duplicates") == 1
    # and within one batch
    both = Worker().batch(records(NEUTRAL, NEUTRAL))
    assert len(sent(both, CLASSIFIED)) == 1 and metric(both, "duplicates") == 1


def test_an_unregistered_page_is_processed_and_reported_once():
    stranger = comment("9", msk("2026-03-04 10:00"), "Вы все идиоты", page="vk:-777")
    worker = Worker()
    result = worker.batch(records(stranger, comment("10", msk("2026-03-04 10:01"), page="vk:-777")))
    assert metric(result, "page_info", page_id="vk:-777") == 1
    assert [f["page_id"] for f in sent(result, FLAGS)] == ["vk:-777", "vk:-777"]


# --- ticks and sweeps -----------------------------------------------------------------------------


def test_a_forced_tick_flags_an_overdue_question_once_and_stores_the_clock():
    worker = Worker()
    worker.batch(records(QUESTION))
    tick = worker.batch(records(Tick(msk("2026-03-04 12:00"), force=True), start=1, source=None))
    [flag] = sent(tick, FLAGS)
    assert flag["reason"] == "unanswered_question" and flag["item_id"] == "101"
    assert flag["details"]["deadline_at"] == msk("2026-03-04 11:00")
    assert worker.tables["clock"]["0"] == msk("2026-03-04 12:00")
    assert worker.step.views[PAGE.page_id].snapshot.overdue_questions == 1
    later = worker.batch(records(Tick(msk("2026-03-04 13:00"), force=True), start=2, source=None))
    assert sent(later, FLAGS) == []


def test_a_tick_reads_a_page_only_when_time_changes_it(cache_bytes):
    """The due index: with nothing cached, a tick reads the page from the table only once its
    view or sweep can change (the question's window exit at 11:00, its deadline at 11:00) and
    after a restart once, to show and index it."""
    reads = []
    tables = {"pages": {}, "clock": {}}

    def read_page(page_id, ref):
        reads.append(page_id)
        return tables["pages"].get(page_id)

    worker = Worker(tables)
    worker.step.tables = Tables(**tables, read_page=read_page)
    worker.batch(records(QUESTION))
    reads.clear()
    for i, at in enumerate(["10:10", "10:40", "10:59"]):
        quiet = worker.batch(records(Tick(msk(f"2026-03-04 {at}"), force=True), start=1 + i,
                                     source=None))
        assert sent(quiet, FLAGS) == [] and quiet.writes[-1].table == "clock"
    assert reads == []  # not due: the tick never looked at the page
    due = worker.batch(records(Tick(msk("2026-03-04 11:00"), force=True), start=4, source=None))
    assert [f["item_id"] for f in sent(due, FLAGS)] == ["101"]
    assert reads == ([PAGE.page_id] if cache_bytes else [])
    restarted = Worker(tables)
    first = restarted.batch(records(Tick(msk("2026-03-04 11:10"), force=True), start=5,
                                    source=None))
    assert sent(first, FLAGS) == [] and restarted.step.views[PAGE.page_id].snapshot.overdue_questions == 1
    # next due when the open question expires, 30 days after it was asked
    assert restarted.step.due[0][PAGE.page_id][0] > msk("2026-04-03 09:59")


def test_a_tick_sweeps_a_page_only_as_far_as_its_own_input_has_got():
    """B's question comes from raw:1, A's later comment from raw:0 (the reordering after a
    restart): a wall-clock tick of a busy partition must not flag B at A's time."""
    question_b = comment("3004", msk("2026-03-04 09:30"), "Когда починят дорогу?", page=OTHER.page_id)
    worker = Worker()
    worker.batch(records(question_b, source="raw:1")
                 + records(comment("1007", msk("2026-03-04 15:40"), "Спасибо"), start=1))
    busy = worker.batch(records(Tick(WALL), start=2, source=None))  # not idle: not trusted
    assert sent(busy, FLAGS) == []
    answer = page_reply("3007", msk("2026-03-04 10:05"), to=question_b)
    answered = worker.batch(records(answer, start=3, source="raw:1"))
    assert sent(answered, FLAGS) == [] and metric(answered, "answer_seconds") == 35 * 60
    end = worker.batch(records(Tick(msk("2026-03-04 18:00"), force=True), start=4, source=None))
    assert sent(end, FLAGS) == []


def test_an_idle_partition_trusts_the_wall_clock():
    wall = [WALL]
    worker = Worker()
    worker.step.clocks.wall_clock = lambda: wall[0]
    worker.batch(records(QUESTION))
    wall[0] += 31
    idle = worker.batch(records(Tick(wall[0]), start=1, source=None))
    assert [f["reason"] for f in sent(idle, FLAGS)] == ["unanswered_question"]
    assert metric(idle, "stream_time") == wall[0]


# --- flag updates (contract A) ---------------------------------------------------------------------


def flagged_overdue(worker: Worker) -> None:
    worker.batch(records(QUESTION))
    tick = worker.batch(records(Tick(msk("2026-03-04 12:00"), force=True), start=1, source=None))
    assert len(sent(tick, FLAGS)) == 1


def test_the_page_answering_a_question_flagged_overdue_sends_one_answered_update():
    worker = Worker()
    flagged_overdue(worker)
    answer = page_reply("201", msk("2026-03-04 12:30"), to=QUESTION)
    batch = records(answer, start=2)
    result = worker.batch(batch, store=False)
    [update] = sent(result, FLAG_UPDATES)
    fid = flag_id(PAGE.page_id, "101", "unanswered_question")
    assert update == {
        "flag_id": fid, "kind": "answered", "page_id": PAGE.page_id, "item_id": "101",
        "at": answer.created_at, "update_id": update_id(fid, "answered", answer.event_id),
        "link": answer.url, "text": answer.text, "scores": None,
        "details": {"answer_item_id": "201", "response_seconds": 9000.0},
    }
    assert [s.key for s in result.sends if s.role == FLAG_UPDATES] == [PAGE.page_id.encode()]
    assert metric(result, "flag_updates", kind="answered") == 1
    # a crash before the store: the batch re-applied sends the same update, once
    again = Worker(worker.tables).batch(batch)
    assert sent(again, FLAG_UPDATES) == [update]
    assert Worker(worker.tables).batch(batch).sends == []  # stored now: a re-read sends nothing


def test_an_answer_after_the_deadline_with_no_sweep_between_flags_and_updates_in_one_step():
    worker = Worker()
    worker.batch(records(QUESTION))
    answer = page_reply("201", msk("2026-03-04 11:30"), to=QUESTION)
    result = worker.batch(records(answer, start=1))
    assert [s.role for s in result.sends] == [EVENTS, CLASSIFIED, FLAGS, FLAG_UPDATES]
    assert sent(result, FLAG_UPDATES)[0]["flag_id"] == sent(result, FLAGS)[0]["flag_id"]


def test_an_answer_in_time_or_to_an_unflagged_question_sends_no_update():
    worker = Worker()
    worker.batch(records(QUESTION))
    result = worker.batch(records(page_reply("201", msk("2026-03-04 10:30"), to=QUESTION), start=1))
    assert sent(result, FLAG_UPDATES) == [] and sent(result, FLAGS) == []


def test_a_flagged_comment_edited_deleted_and_restored_sends_one_update_per_flag_each_time():
    worker = Worker()
    worker.batch(records(TOXIC))
    fids = {flag_id(PAGE.page_id, "102", r) for r in ("toxic", "strongly_negative")}
    change = edited(TOXIC, "Всё ужасно")
    result = worker.batch(records(change, start=1))
    updates = sent(result, FLAG_UPDATES)
    assert {u["flag_id"] for u in updates} == fids and {u["kind"] for u in updates} == {"edited"}
    assert updates[0]["text"] == "Всё ужасно" and updates[0]["scores"]["negative"] == 0.9
    assert updates[0]["at"] == TOXIC.created_at and updates[0]["link"] is None
    gone = worker.batch(records(deleted(TOXIC), start=2))
    assert {(u["kind"], u["at"]) for u in sent(gone, FLAG_UPDATES)} == {("deleted", TOXIC.created_at)}
    back = worker.batch(records(restored(change), start=3))
    assert [u["kind"] for u in sent(back, FLAG_UPDATES)] == ["restored", "restored"]
    ids = [u["update_id"] for r in (result, gone, back) for u in sent(r, FLAG_UPDATES)]
    assert len(set(ids)) == 6


def test_an_edit_that_raises_a_new_flag_is_no_update_of_it_and_an_unflagged_edit_none():
    worker = Worker()
    worker.batch(records(NEUTRAL))
    result = worker.batch(records(edited(NEUTRAL, "Вы все идиоты"), start=1))
    assert len(sent(result, FLAGS)) == 2 and sent(result, FLAG_UPDATES) == []
    calm = Worker()
    calm.batch(records(NEUTRAL))
    assert sent(calm.batch(records(edited(NEUTRAL, "Спасибо!"), start=1)), FLAG_UPDATES) == []


def test_a_flagged_question_deleted_sends_a_deleted_update():
    worker = Worker()
    flagged_overdue(worker)
    result = worker.batch(records(deleted(QUESTION), start=2))
    [update] = sent(result, FLAG_UPDATES)
    assert update["kind"] == "deleted" and update["flag_id"] == flag_id(
        PAGE.page_id, "101", "unanswered_question")
    assert update["at"] == msk("2026-03-04 12:00")  # VK deletes carry no date: the stream clock


def test_the_end_of_a_flagged_spike_episode_sends_spike_ended_for_its_flag():
    start = msk("2026-03-04 14:00")
    negatives = [comment(str(300 + i), start + i * 60, "Плохо", author=f"7{i}") for i in range(3)]
    worker = Worker()
    spike = worker.batch(records(*negatives))
    [flag] = sent(spike, FLAGS)
    assert flag["reason"] == "negative_spike"
    assert json.loads(worker.tables["pages"][PAGE.page_id])["spike_item"] == flag["item_id"]
    calm = [comment(str(400 + i), start + 600 + i * 60, "Спасибо", author=f"8{i}")
            for i in range(10)]
    batch = records(*calm, start=3)
    ended = Worker(worker.tables).batch(batch, store=False)
    [update] = sent(ended, FLAG_UPDATES)
    assert (update["kind"], update["flag_id"], update["item_id"]) == (
        "spike_ended", flag["flag_id"], flag["item_id"])
    assert update["details"]["negative_count"] == 3 and update["details"]["share"] < 0.25
    assert Worker(worker.tables).batch(batch).sends[-1].value == ended.sends[-1].value
    assert json.loads(worker.tables["pages"][PAGE.page_id])["spike_item"] is None


def test_metric_changes_apply_to_the_registry():
    worker = Worker()
    result = worker.batch(records(QUESTION, TOXIC))
    metrics = DozorMetrics(CollectorRegistry())
    metrics.apply(result.metrics)
    registry = metrics.registry
    assert registry.get_sample_value(
        "dozor_events_total", {"platform": "vk", "kind": "comment", "action": "new"}) == 2
    assert registry.get_sample_value(
        "dozor_flags_total", {"page_id": PAGE.page_id, "reason": "toxic"}) == 1
    assert registry.get_sample_value(
        "dozor_flag_updates_total", {"kind": "answered"}) == 0


def test_topics_ride_on_classified_records_and_flags_and_count_negative_comments_by_page():
    """Issue 21: each classified record and each flag of a comment carries the comment's topic;
    dozor_negative_comments_by_topic counts negative comments with a topic, by page and topic."""
    worker = Worker(topics=True)
    heat = comment("104", msk("2026-03-04 10:07"), "Всё ужасно", author="610004")
    mild = comment("105", msk("2026-03-04 10:08"), "Плохо", author="610005")
    elsewhere = comment("201", msk("2026-03-04 10:09"), "Плохо", author="610006", page=OTHER.page_id)
    result = worker.batch(records(QUESTION, TOXIC, NEUTRAL, heat, mild, elsewhere))
    assert {c["item_id"]: c["topic"] for c in sent(result, CLASSIFIED)} == {
        "101": "roads", "102": None, "103": None, "104": "zhkh_heat", "105": "zhkh_heat",
        "201": "zhkh_heat"}
    assert {(f["item_id"], f["reason"]): f["topic"] for f in sent(result, FLAGS)} == {
        ("102", "toxic"): None, ("102", "strongly_negative"): None,
        ("104", "strongly_negative"): "zhkh_heat",
        ("spike:105", "negative_spike"): None}  # an episode of many comments: no one topic
    # negative comments only (the question about roads is not negative), none without a topic
    assert metric(result, "negative_comments_by_topic", page_id=PAGE.page_id, topic="zhkh_heat") == 2
    assert metric(result, "negative_comments_by_topic", page_id=OTHER.page_id, topic="zhkh_heat") == 1
    assert metric(result, "negative_comments_by_topic") == 3
    registry = DozorMetrics(CollectorRegistry())
    registry.apply(result.metrics)
    assert registry.registry.get_sample_value(
        "dozor_negative_comments_by_topic_total", {"page_id": PAGE.page_id, "topic": "zhkh_heat"}) == 2
    assert registry.registry.get_sample_value(
        "dozor_negative_comments_by_topic_total", {"page_id": PAGE.page_id, "topic": "roads"}) is None
    # the question keeps its topic in the page state, to its overdue flag (and after a restart)
    tick = Worker(worker.tables, topics=True).batch(
        records(Tick(msk("2026-03-04 12:00"), force=True), start=6, source=None))
    [overdue] = sent(tick, FLAGS)
    assert (overdue["reason"], overdue["item_id"], overdue["topic"]) == ("unanswered_question", "101", "roads")


def test_without_a_topic_head_records_and_flags_carry_no_topic_and_nothing_is_counted():
    worker = Worker()
    result = worker.batch(records(QUESTION, TOXIC, comment("104", msk("2026-03-04 10:07"), "Всё ужасно")))
    assert [c["topic"] for c in sent(result, CLASSIFIED)] == [None, None, None]
    assert all(f["topic"] is None for f in sent(result, FLAGS))
    assert metric(result, "negative_comments_by_topic") == 0
    tick = worker.batch(records(Tick(msk("2026-03-04 12:00"), force=True), start=3, source=None))
    assert [f["topic"] for f in sent(tick, FLAGS)] == [None]


def test_topic_info_names_the_models_topics():
    metrics = DozorMetrics(CollectorRegistry())
    metrics.init_topics({"roads": "Дороги", "waste": "Мусор и свалки"})
    assert metrics.registry.get_sample_value("dozor_topic_info", {"topic": "roads", "name": "Дороги"}) == 1
    metrics.init_topics({})  # a model without a topic head exports nothing more
    assert len(list(metrics.topic_info.collect())[0].samples) == 2


@pytest.mark.parametrize("item", [QUESTION, Tick(WALL)])
def test_records_of_the_batch_keep_their_ref_in_the_writes(item):
    worker = Worker()
    result = worker.batch(records(item, partition=2, start=5))
    assert all(w.ref == ("ref", 2, 5) for w in result.writes)


def test_a_question_re_opened_by_an_edit_and_answered_by_a_remembered_reply_updates_without_a_link():
    """Flagged overdue, edited into a statement (withdrawn), the page replies, the author edits
    the question back: the remembered reply answers it at once. The answer's link is not in
    this event, so `link` and `text` are null and the answer's id is in the details."""
    worker = Worker()
    flagged_overdue(worker)
    statement = edited(QUESTION, "Спасибо")
    reply = page_reply("201", msk("2026-03-04 12:30"), to=QUESTION)
    worker.batch(records(statement, reply, start=2))
    back = edited(QUESTION, "Когда починят дорогу?")
    result = worker.batch(records(back, start=4))
    answered = [u for u in sent(result, FLAG_UPDATES) if u["kind"] == "answered"]
    assert len(answered) == 1
    assert (answered[0]["link"], answered[0]["text"]) == (None, None)
    assert answered[0]["details"]["answer_item_id"] == "201"
    assert answered[0]["update_id"] == update_id(answered[0]["flag_id"], "answered", back.event_id)
