"""Answer tracking on a real broker: the two-day scenario, uninterrupted and with a SIGKILL.

tests/scenarios/two_days/README.md explains, event by event, why each flag and each count is
expected. The worker loads an oracle checkpoint built from the scenario's labels, and its
stream clock follows event time only (DOZOR_CLOCK_IDLE_SECONDS is huge); after the replay the
clock is advanced to the scenario's end, Wed 18:00, as `dozor replay --advance-clock-to` does.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest
import yaml

from services.broker import free_port
from services.replay import advance_clock, read_lines, replay_lines, wait_until_consumed
from tests.support.checkpoints import answers_from_labels, build_oracle_checkpoint
from tests.support.kafka import consume_json
from tests.support.observe import metric_samples, wait_for
from tests.support.worker import WorkerProcess, worker_environment

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "two_days"
TRACKING_REASONS = {"unanswered_question", "negative_spike"}
pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((SCENARIO / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def scenario_model(tmp_path_factory) -> Path:
    labels = json.loads((SCENARIO / "labels.json").read_text(encoding="utf-8"))
    # strongly_negative flags are out of this scenario's scope: the workers keep them off.
    return build_oracle_checkpoint(
        tmp_path_factory.mktemp("scenario") / "m", answers_from_labels(labels)
    )


def expected_flags(expected: dict) -> list[tuple[str, str, str]]:
    """Flags once the stream has lived through both days.

    The late answer of question 2001 comes after its deadline: time reaching the answer
    passes the deadline first, so its overdue flag is always raised (the pure test also
    covers the schedule where no sweep ran in between).
    """
    flags = expected["flags"] + expected["flags_if_swept_before_late_answer"]
    return sorted(
        (f["page_id"], f"spike:{f['item_id']}" if f["reason"] == "negative_spike" else f["item_id"],
         f["reason"])
        for f in flags
    )


def tracking_metrics(text: str) -> dict:
    """The state-derived metrics that must survive a crash, as comparable plain data."""
    names = (
        "dozor_questions_total", "dozor_questions_open", "dozor_questions_overdue",
        "dozor_posts_total", "dozor_last_post_timestamp_seconds",
        "dozor_oldest_open_question_timestamp_seconds",
    )
    return {name: metric_samples(text, name) for name in names}


def expected_metrics(expected: dict) -> dict:
    want: dict = {}
    for page_id, counts in expected["pages"].items():
        for outcome in ("answered_in_time", "answered_late", "deleted"):
            want[("dozor_questions_total", page_id, outcome)] = counts[outcome]
        want[("dozor_questions_open", page_id)] = counts["open"]
        want[("dozor_questions_overdue", page_id)] = counts["overdue"]
        want[("dozor_posts_total", page_id)] = counts["posts_total"]
        want[("dozor_last_post_timestamp_seconds", page_id)] = counts["last_post_at"]
    return want


def flatten(metrics: dict) -> dict:
    flat = {}
    for name, samples in metrics.items():
        for labels, value in samples.items():
            d = dict(labels)
            key = (name, d["page_id"], d["outcome"]) if "outcome" in d else (name, d["page_id"])
            flat[key] = value
    return flat


class ScenarioRun:
    def __init__(self, bootstrap: str, model: Path, tmp: Path) -> None:
        self.bootstrap = bootstrap
        self.prefix = f"s{uuid.uuid4().hex[:8]}"
        self.model = model
        self.tmp = tmp
        self.workers: list[WorkerProcess] = []
        self.next_offsets: dict[int, int] = {}

    def start_worker(self, **extra_env: str) -> WorkerProcess:
        port = free_port()
        env = worker_environment(
            self.bootstrap, self.model, self.tmp / f"data{len(self.workers)}", self.prefix, port
        )
        env.update(
            DOZOR_PAGES_FILE=str(SCENARIO / "pages.yaml"),
            DOZOR_CLOCK_IDLE_SECONDS="1000000000",
            DOZOR_FLAG_NEGATIVE_THRESHOLD="1.01",
        )
        env.update(extra_env)
        worker = WorkerProcess(
            env=env, log_path=self.tmp / f"worker{len(self.workers)}.log", metrics_port=port
        )
        self.workers.append(worker)
        return worker.start()

    def replay(self, lines: list[bytes]) -> None:
        report = asyncio.run(replay_lines(self.bootstrap, f"{self.prefix}.raw.vk", lines))
        for partition, offset in report.next_offsets.items():
            self.next_offsets[partition] = max(self.next_offsets.get(partition, 0), offset)

    def finish(self, end_at: float, n_flags: int) -> tuple[list[dict], dict]:
        """Close the period at `end_at`; returns the flags and the settled tracking metrics."""
        asyncio.run(wait_until_consumed(
            self.bootstrap, self.prefix, f"{self.prefix}.raw.vk", self.next_offsets
        ))
        asyncio.run(advance_clock(self.bootstrap, f"{self.prefix}.clock", end_at))
        flags = consume_json(
            self.bootstrap, f"{self.prefix}.flags",
            until=lambda objs: sum(o["reason"] in TRACKING_REASONS for o in objs) >= n_flags,
            timeout=90,
        )
        worker = self.workers[-1]
        previous: list = [None, 0.0]

        def settled():
            text = worker.metrics()
            first = tracking_metrics(text)
            # The clock has reached end_at when the last page shows its overdue question.
            if not any(v for v in first["dozor_questions_overdue"].values()):
                return None
            # ... and every partition has caught up (after a restart the new worker does so one
            # partition at a time): nothing processed and no tracking metric changed for 5 s.
            reading = (first, metric_samples(text, "dozor_events_total"))
            if reading != previous[0]:
                previous[:] = [reading, time.monotonic()]
                return None
            return first if time.monotonic() - previous[1] >= 5.0 else None

        metrics = wait_for(settled, timeout=60, message="tracking metrics at end_at")
        return flags, metrics

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture(scope="module")
def uninterrupted(kafka_bootstrap, scenario_model, expected, tmp_path_factory):
    run = ScenarioRun(kafka_bootstrap, scenario_model, tmp_path_factory.mktemp("straight"))
    try:
        run.start_worker()
        run.replay(read_lines(SCENARIO / "events.jsonl"))
        yield run.finish(expected["end_at"], len(expected_flags(expected)))
    finally:
        run.stop()


@pytest.fixture(scope="module")
def interrupted(kafka_bootstrap, scenario_model, expected, tmp_path_factory):
    """SIGKILL the worker right after it raised the spike flag, then start another.

    Line 30 is the page's answer to the spike's question; the kill lands as soon as the flag
    of line 27 is visible, so the offsets of the events around it are most likely not yet
    committed and the new worker processes them again: it must not flag them again.
    """
    run = ScenarioRun(kafka_bootstrap, scenario_model, tmp_path_factory.mktemp("killed"))
    lines = read_lines(SCENARIO / "events.jsonl")
    cut = 30
    try:
        first = run.start_worker()
        run.replay(lines[:cut])
        consume_json(
            kafka_bootstrap, f"{run.prefix}.flags",
            until=lambda objs: any(o["reason"] == "negative_spike" for o in objs), timeout=60,
        )
        first.kill()
        run.replay(lines[cut:])
        second = run.start_worker()
        flags, metrics = run.finish(expected["end_at"], len(expected_flags(expected)))
        redelivered = sum(metric_samples(second.metrics(), "dozor_duplicate_events_total").values())
        print(f"events redelivered after the SIGKILL and recognised as seen: {redelivered}")
        yield flags, metrics
    finally:
        run.stop()


def test_scenario_flags(uninterrupted, expected):
    flags, _ = uninterrupted
    got = sorted(
        (f["page_id"], f["item_id"], f["reason"]) for f in flags if f["reason"] in TRACKING_REASONS
    )
    assert got == expected_flags(expected)
    overdue = next(f for f in flags if f["reason"] == "unanswered_question")
    assert overdue["link"].startswith("https://vk.com/wall-")
    assert overdue["details"]["age_seconds"] > 0 and overdue["page_name"]


def test_scenario_metrics(uninterrupted, expected):
    _, metrics = uninterrupted
    flat = flatten(metrics)
    for key, value in expected_metrics(expected).items():
        assert flat.get(key) == value, key


def test_crash_and_recovery_gives_the_same_flags_and_metrics(uninterrupted, interrupted):
    flags, metrics = uninterrupted
    flags_after_crash, metrics_after_crash = interrupted
    assert sorted(
        (f["page_id"], f["item_id"], f["reason"]) for f in flags_after_crash
    ) == sorted((f["page_id"], f["item_id"], f["reason"]) for f in flags), "a flag lost or repeated"
    assert len({f["flag_id"] for f in flags_after_crash}) == len(flags_after_crash)
    assert flatten(metrics_after_crash) == flatten(metrics)


def test_a_tick_does_not_sweep_a_page_past_its_own_input(kafka_bootstrap, scenario_model, expected,
                                                         tmp_path):
    """The failure the crash test caught now and then, made deterministic.

    One partition number holds two inputs, the VK and the Telegram raw topics, and after a
    restart one can be hours ahead of the other. Here, written straight into partition 0 of
    each: B's question (VK, Wed 09:30, due 13:30), a post of Telegram page A (Wed 15:40), a
    pause in which clock ticks arrive (the partition clock reads 15:40), then B's answer (VK,
    Wed 10:05). Sweeping B at the partition clock flagged the answered question overdue; B
    may only be swept as far as its own input has got.
    """
    from aiokafka import AIOKafkaProducer

    from streams.normalize.vk import normalize_vk_bytes
    from tests.support import telegram_payloads as tg

    run = ScenarioRun(kafka_bootstrap, scenario_model, tmp_path)
    lines = read_lines(SCENARIO / "events.jsonl")
    raw = {}
    for line in lines:
        event = normalize_vk_bytes(line)
        raw[(event.page_id, event.item_id, event.action)] = (line, event)
    (question_line, question), (answer_line, answer) = (
        raw[("vk:-2000003", "3004", "new")], raw[("vk:-2000003", "3007", "new")])
    post_at = int(question.created_at) + 6 * 3600 + 10 * 60  # Wed 15:40
    assert question.created_at < answer.created_at < question.created_at + 3600 < post_at
    post = json.dumps(tg.channel_post(41, "График приёма граждан", date=post_at),
                      ensure_ascii=False).encode()
    pages = tmp_path / "pages.yaml"
    scenario_pages = yaml.safe_load((SCENARIO / "pages.yaml").read_text("utf-8"))["pages"]
    pages.write_text(tg.registry_yaml(*scenario_pages), "utf-8")

    async def send(items: list[tuple[str, bytes]]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for topic, value in items:
                await producer.send_and_wait(f"{run.prefix}.{topic}", value=value, partition=0)
        finally:
            await producer.stop()

    def events_read() -> float:
        return sum(metric_samples(worker.metrics(), "dozor_events_total").values())

    try:
        worker = run.start_worker(DOZOR_PAGES_FILE=str(pages))
        asyncio.run(send([("raw.vk", question_line), ("raw.telegram", post)]))
        wait_for(lambda: events_read() >= 2, timeout=60, message="B's question and A's post applied")
        time.sleep(3.0)  # six sweep intervals: ticks arrive with the partition clock at 15:40
        asyncio.run(send([("raw.vk", answer_line)]))
        asyncio.run(advance_clock(kafka_bootstrap, f"{run.prefix}.clock", expected["end_at"]))

        def answered():
            samples = metric_samples(worker.metrics(), "dozor_questions_total")
            return samples.get((("outcome", "answered_in_time"), ("page_id", "vk:-2000003")), 0) >= 1

        wait_for(answered, timeout=60, message="B's answer applied")
        flags = consume_json(kafka_bootstrap, f"{run.prefix}.flags", timeout=3)
        assert not [f for f in flags if f["reason"] == "unanswered_question"], flags
        samples = metric_samples(worker.metrics(), "dozor_questions_total")
        assert samples.get((("outcome", "answered_late"), ("page_id", "vk:-2000003")), 0) == 0
    finally:
        run.stop()

