"""End to end on a real Kafka-protocol broker: raw VK payloads in → flags, classified, DLQ.

The worker runs as `dozor worker` and loads an oracle checkpoint (tests/support/checkpoints.py)
through the real loading code, so the flags it must raise are known in advance
(tests/fixtures/vk/README.md explains each).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.checkpoints import answers_from_labels, build_oracle_checkpoint
from tests.support.kafka import consume_json, replay_file
from tests.support.observe import metric_samples, wait_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vk"
pytestmark = pytest.mark.broker

COMMENT_REASONS = {"toxic", "strongly_negative"}
#: The oracle's topic head: these texts get a topic, every other text none.
TOPICS = {
    "Третий месяц без света на Полевой, всем плевать. Позор администрации!": "lighting",
    "Опять дорогу до Заречья не почистили, сколько можно ждать": "roads",
    "Когда вывезут мусор на Садовой улице?": "waste",
}


@pytest.fixture(scope="module")
def oracle_model(tmp_path_factory) -> Path:
    labels = json.loads((FIXTURES / "pipeline_labels.json").read_text(encoding="utf-8"))
    return build_oracle_checkpoint(
        tmp_path_factory.mktemp("oracle") / "m", answers_from_labels(labels), topics=TOPICS
    )


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((FIXTURES / "pipeline_expected.json").read_text(encoding="utf-8"))


def spawned_children(pid: int) -> list[int]:
    """Processes started by `pid` through multiprocessing's spawn (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if f"\nPPid:\t{pid}\n" in status and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module", params=["in-process", "child-process"])
def replayed(request, kafka_bootstrap, oracle_model, expected, tmp_path_factory):
    """Run one worker over the recorded fixture; collect what it produced. Twice: the model in
    the worker's process, and in a child process (DOZOR_CLASSIFIER_PROCESS)."""
    import uuid

    from tests.support.worker import WorkerProcess, worker_environment
    from services.broker import free_port

    tmp = tmp_path_factory.mktemp("pipeline")
    prefix = f"p{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = worker_environment(kafka_bootstrap, oracle_model, tmp / "data", prefix, port)
    env["DOZOR_CLASSIFIER_PROCESS"] = str(request.param == "child-process").lower()
    worker = WorkerProcess(env=env, log_path=tmp / "worker.log", metrics_port=port).start()
    try:
        sent = replay_file(FIXTURES / "pipeline_events.jsonl", kafka_bootstrap, f"{prefix}.raw.vk")
        n_flags = len(expected["flags"])
        flags = consume_json(
            kafka_bootstrap, f"{prefix}.flags",
            until=lambda objs: sum(o["reason"] in COMMENT_REASONS for o in objs) >= n_flags,
            timeout=90,
        )
        classified = consume_json(
            kafka_bootstrap, f"{prefix}.classified",
            until=lambda objs: len(objs) >= expected["comments"], timeout=60,
        )
        dead = consume_json(
            kafka_bootstrap, f"{prefix}.dead-letters",
            until=lambda objs: len(objs) >= len(expected["dead_letters"]), timeout=30,
        )
        metrics = wait_for(
            lambda: (t := worker.metrics())
            and sum(metric_samples(t, "dozor_comments_total").values()) >= expected["comments"]
            and t,
            timeout=30, message="comment counters",
        )
        if request.param == "child-process":  # the setting took effect: the model runs there
            assert spawned_children(worker.process.pid), "no classifier child process"
        yield {
            "sent": sent, "flags": flags, "classified": classified, "dead": dead,
            "metrics": metrics, "worker": worker, "prefix": prefix,
        }
    finally:
        worker.stop()


def test_expected_flags_arrive_once_with_pages_reasons_and_links(replayed, expected):
    got = sorted(
        (f["page_id"], f["item_id"], f["reason"], f["link"])
        for f in replayed["flags"] if f["reason"] in COMMENT_REASONS
    )
    want = sorted((f["page_id"], f["item_id"], f["reason"], f["link"]) for f in expected["flags"])
    assert got == want
    assert len({f["flag_id"] for f in replayed["flags"]}) == len(replayed["flags"])
    one = next(f for f in replayed["flags"] if f["reason"] == "toxic")
    assert one["text"] and one["scores"]["toxic"] >= 0.5 and one["page_name"]


def test_classified_count_equals_comments(replayed, expected):
    assert len(replayed["classified"]) == expected["comments"]
    record = replayed["classified"][0]
    assert set(record["scores"]) == {"question", "negative", "toxic"}
    assert isinstance(record["labels"], list)


def test_topics_reach_classified_records_flags_and_metrics(replayed):
    """Issue 21 through the real worker (and its child process): the model's topic head."""
    by_text = {r["text"]: r["topic"] for r in replayed["classified"]}
    assert {t: by_text[t] for t in TOPICS} == TOPICS
    assert {r["topic"] for r in replayed["classified"] if r["text"] not in TOPICS} == {None}
    flag_topics = {(f["page_id"], f["item_id"], f["reason"]): f["topic"] for f in replayed["flags"]}
    assert flag_topics[("vk:-2200001", "7", "strongly_negative")] == "lighting"
    assert flag_topics[("vk:-2200001", "8", "strongly_negative")] == "roads"
    assert flag_topics[("vk:-2200001", "15", "toxic")] is None
    want: dict[tuple, int] = {}
    for r in replayed["classified"]:
        if r["topic"] and "negative" in r["labels"]:
            key = (("page_id", r["page_id"]), ("topic", r["topic"]))
            want[key] = want.get(key, 0) + 1
    counted = metric_samples(replayed["metrics"], "dozor_negative_comments_by_topic_total")
    assert counted == want and set(dict(k)["topic"] for k in want) == {"lighting", "roads"}
    info = metric_samples(replayed["metrics"], "dozor_topic_info")
    assert info[(("name", "тема roads"), ("topic", "roads"))] == 1


def test_malformed_lines_are_dead_lettered_with_reason_and_original_bytes(replayed, expected):
    import base64

    lines = (FIXTURES / "pipeline_events.jsonl").read_bytes().splitlines()
    dead = replayed["dead"]
    assert len(dead) == len(expected["dead_letters"])
    for want in expected["dead_letters"]:
        original = lines[want["line"] - 1]
        match = [d for d in dead if base64.b64decode(d["payload_base64"]) == original]
        assert match, f"line {want['line']} not in the dead-letter topic"
        assert want["reason_contains"].lower() in (match[0]["reason"] + match[0]["detail"]).lower()


def test_worker_keeps_going_after_bad_input(replayed):
    """Events after the malformed lines were processed, and the worker is still up."""
    assert replayed["worker"].process.poll() is None
    assert len(replayed["classified"]) > 10


def test_metrics_show_the_replay_and_pass_promtool(replayed, expected, tmp_path):
    text = replayed["metrics"]
    comments = metric_samples(text, "dozor_comments_total")
    assert sum(comments.values()) == expected["comments"]
    flags = metric_samples(text, "dozor_flags_total")
    by_reason: dict[str, float] = {}
    for labels, value in flags.items():
        by_reason[dict(labels)["reason"]] = by_reason.get(dict(labels)["reason"], 0) + value
    assert by_reason["toxic"] == sum(f["reason"] == "toxic" for f in expected["flags"])
    assert by_reason["strongly_negative"] == sum(
        f["reason"] == "strongly_negative" for f in expected["flags"]
    )
    dead = metric_samples(text, "dozor_dead_letters_total")
    assert sum(dead.values()) == len(expected["dead_letters"])
    assert dead[(("reason", "unsupported_type"),)] == 1
    assert sum(metric_samples(text, "dozor_duplicate_events_total").values()) == expected[
        "duplicates"
    ]
    events = metric_samples(text, "dozor_events_total")
    assert events[(("action", "new"), ("kind", "comment"), ("platform", "vk"))] >= 20
    assert sum(metric_samples(text, "dozor_classifier_batch_size_count").values()) >= 1
    assert metric_samples(text, "dozor_last_event_timestamp_seconds")[(("platform", "vk"),)] > 1.7e9
    path = tmp_path / "metrics.txt"
    path.write_text(text)
    result = subprocess.run(
        ["promtool", "check", "metrics"], stdin=path.open(), capture_output=True, text=True
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


def test_a_worker_refuses_input_topics_with_different_partition_counts(kafka_bootstrap, tmp_path,
                                                                       tiny_model_dir):
    """A raw topic made elsewhere with another partition count (a broker's auto-create default)
    would pair a page's records with another partition's clock and state: the worker says so and
    exits instead."""
    import asyncio
    import sys
    import uuid

    from services.broker import free_port
    from streams.topics import ensure_topics
    from tests.support.worker import REPO, worker_environment

    prefix = f"p{uuid.uuid4().hex[:8]}"
    env = worker_environment(kafka_bootstrap, tiny_model_dir, tmp_path / "data", prefix, free_port())
    counts = asyncio.run(ensure_topics(kafka_bootstrap, [f"{prefix}.raw.vk"], 2))
    assert counts == {f"{prefix}.raw.vk": 2}
    done = subprocess.run([sys.executable, "-m", "services.cli", "worker"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"{prefix}.raw.vk: 2" in done.stderr and f"{prefix}.clock: 4" in done.stderr, done.stderr
