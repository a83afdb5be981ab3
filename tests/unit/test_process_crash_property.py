"""The two-day scenario through the batch step under random crashes, restarts and copies.

What the broker's crash test meets by chance is drawn here on purpose, per seed: batch sizes;
clock ticks between any two messages; a crash after any batch, with or without that batch's
table writes stored; a committed offset anywhere up to the last stored batch; the raw input
normalised again from any earlier point (copies of events already in the topic, appended
after them, as `normalize` produces them after its own restart), once or twice; a second
crash of the next worker. Whatever the draw, the flags raised over the whole run are the
scenario's expected flags, none lost and none invented; each is sent once, unless a crash
fell between a batch's sends and its table writes, and then again with the same flag_id (the
documented window, docs/ARCHITECTURE.md). The step's guarantee rests only on tables that hold
what was stored and offsets committed no further than that.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from streams.classify import classify_events
from streams.flags import FlagPolicy
from streams.pages import PageRegistry
from streams.process import FLAGS, BatchStep, InputRecord, Normalizer, Tables
from streams.ticks import Tick
from streams.track import TrackingPolicy
from streams.tracking.calendar import WorkingCalendar
from streams.tracking.page_state import SpikePolicy
from tests.support.step import store_writes

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "two_days"
EXPECTED = json.loads((SCENARIO / "expected.json").read_text("utf-8"))
LABELS = json.loads((SCENARIO / "labels.json").read_text("utf-8"))
PAGES = PageRegistry.load(SCENARIO / "pages.yaml")
POLICY = TrackingPolicy(calendar=WorkingCalendar.parse(**EXPECTED["calendar"]),
                        spike=SpikePolicy(**EXPECTED["spike_policy"]))
FLAG_POLICY = FlagPolicy(negative_threshold=1.01)  # strongly_negative is out of this scenario
WALL = 1797000000.0  # the wall clock: months after the scenario, so ticks are never trusted
CUT = 30  # the first worker dies after the scenario's first 30 payloads, as in the broker test
TRACKING = ("unanswered_question", "negative_spike")


def predict(texts: list[str]) -> list[dict[str, float]]:
    scores = []
    for text in texts:
        labels = LABELS.get(text.strip(), {})
        scores.append({label: 0.95 if labels.get(label) else 0.02
                       for label in ("question", "negative", "toxic")})
    return scores


def labels_above(scores: dict[str, float]) -> list[str]:
    return [label for label, p in scores.items() if p >= 0.5]


NORMALIZE = Normalizer.for_pages(PAGES)
EVENTS = [NORMALIZE("vk", line.encode()) for line in
          (SCENARIO / "events.jsonl").read_text("utf-8").splitlines() if line]


class Worker:
    """One worker process over the stored tables (a fresh cache, as after a restart)."""

    def __init__(self, tables: dict, cache_bytes: int = 0) -> None:
        self.tables = tables
        self.step = BatchStep(Tables(**tables), PAGES, POLICY, FLAG_POLICY, lambda: WALL, 1e9,
                              cache_bytes=cache_bytes)

    def consume(self, log: list, start: int, end: int, rng: random.Random, flags: list,
                store_last: bool = True) -> int:
        """Messages [start, end) in random batches; returns the offset after the last batch
        whose writes were all stored (the furthest a commit can reach). Without `store_last`
        the process dies while writing the last batch: only a prefix of its writes is kept."""
        position = stored = start
        while position < end:
            chunk = log[position:min(end, position + rng.randint(1, 8))]
            records = [InputRecord(0, position + k, item, source, ref=position + k)
                       for k, (item, source) in enumerate(chunk)]
            result = self.step.run(records, classify_events(
                self.step.to_classify(records), predict, labels_above))
            flags.extend(json.loads(s.value) for s in result.sends if s.role == FLAGS)
            position += len(chunk)
            writes = result.writes
            if position >= end and not store_last:
                # The crash interrupts the writes, which go out in order: a prefix arrives.
                writes = writes[:rng.randint(0, len(writes))]
            store_writes(self.tables, writes)
            if position < end or store_last:
                self.step.stored(result)
                stored = position
        return stored


def with_ticks(indices: list[int], rng: random.Random) -> list:
    """The events topic as `normalize` fills it: the payloads' events, ticks in between."""
    log = []
    for i in indices:
        if rng.random() < 0.3:
            log.append((Tick(WALL, False), None))
        log.append((EVENTS[i], "raw:0"))
    return log


def crash_run(seed: int, lose_writes: bool) -> list[dict]:
    """The tracking flags sent over the run, and the page counts stored at its end;
    `lose_writes`: a crash may cut short the writes of the batch it interrupts."""
    rng = random.Random(seed)
    indices = [i for i, e in enumerate(EVENTS) if e is not None]
    before, after = [i for i in indices if i < CUT], [i for i in indices if i >= CUT]
    tables: dict = {"pages": {}, "clock": {}}
    flags: list = []
    # The step's cache: all records, none kept after a batch, or a few (its own draw, so the
    # crash points of a seed stay what they were).
    cache = random.Random(-seed).choice([0, 1, 3000])
    log = with_ticks(before, rng)
    killed_at = rng.randint(1, len(log))
    stored = Worker(tables, cache).consume(log, 0, killed_at, rng, flags,
                                    not (lose_writes and rng.random() < 0.5))
    committed = rng.randint(0, stored)
    # The next worker normalises the raw input again from its last committed raw offset, and
    # once more from an earlier point if it restarts on the way.
    tail = before[rng.randint(0, len(before)):] + after
    if rng.random() < 0.7:
        reached = rng.randint(0, len(tail))
        tail = tail[:reached] + tail[rng.randint(0, reached):reached] + tail[reached:]
    log += with_ticks(tail, rng)
    if rng.random() < 0.5:
        middle = rng.randint(committed, len(log))
        stored = Worker(tables, cache).consume(log, committed, middle, rng, flags,
                                         not (lose_writes and rng.random() < 0.5))
        committed = rng.randint(committed, stored)
    log.append((Tick(EXPECTED["end_at"], True), None))  # dozor replay --advance-clock-to
    Worker(tables, cache).consume(log, committed, len(log), rng, flags)
    counts = {page: json.loads(value)["counts"] for page, value in tables["pages"].items()}
    return [f for f in flags if f["reason"] in TRACKING], counts


def keys(flags: list[dict]) -> list[tuple[str, str, str]]:
    return sorted((f["page_id"], f["item_id"], f["reason"]) for f in flags)


def expected_flags() -> list[tuple[str, str, str]]:
    flags = EXPECTED["flags"] + EXPECTED["flags_if_swept_before_late_answer"]
    return sorted(
        (f["page_id"], f"spike:{f['item_id']}" if f["reason"] == "negative_spike"
         else f["item_id"], f["reason"])
        for f in flags
    )


def expected_counts() -> dict[str, dict[str, int]]:
    return {page: {k: c[k] for k in ("answered_in_time", "answered_late", "deleted")}
            for page, c in EXPECTED["pages"].items()}


@pytest.mark.parametrize("seeds", [range(0, 100), range(100, 200)])
def test_random_crashes_and_copies_raise_each_expected_flag_once(seeds):
    for seed in seeds:
        flags, counts = crash_run(seed, lose_writes=False)
        assert keys(flags) == expected_flags(), f"seed {seed}: {keys(flags)}"
        assert counts == expected_counts(), f"seed {seed}: {counts}"


def test_a_crash_during_the_writes_repeats_a_flag_only_with_its_id():
    want = expected_flags()
    repeated = 0
    for seed in range(300):
        flags, counts = crash_run(seed, lose_writes=True)
        assert sorted(set(keys(flags))) == want, f"seed {seed}: {keys(flags)}"
        assert counts == expected_counts(), f"seed {seed}: {counts}"
        ids: dict = {}
        for flag in flags:
            ids.setdefault((flag["page_id"], flag["item_id"], flag["reason"]), set()).add(
                flag["flag_id"])
        assert all(len(v) == 1 for v in ids.values()), f"seed {seed}: {ids}"
        repeated += len(flags) > len(want)
    assert repeated > 0  # the draw does reach the window it is about
