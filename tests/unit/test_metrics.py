"""DictCounter: the per-page counters' series as dict entries, exported like a Counter's."""

from __future__ import annotations

import threading
import tracemalloc

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.metrics import DictCounter, DozorMetrics


def test_a_dict_counter_exports_what_a_counter_would():
    registry = CollectorRegistry()
    counter = DictCounter("dozor_test", "Test counts.", ["page_id", "topic"], registry=registry)
    counter.labels(page_id="vk:-1", topic="roads").inc()
    counter.labels(page_id="vk:-1", topic="roads").inc(2)
    counter.labels(page_id="vk:-2", topic="waste")  # created at 0
    assert registry.get_sample_value("dozor_test_total", {"page_id": "vk:-1", "topic": "roads"}) == 3
    assert registry.get_sample_value("dozor_test_total", {"page_id": "vk:-2", "topic": "waste"}) == 0
    assert registry.get_sample_value("dozor_test_total", {"page_id": "vk:-2", "topic": "roads"}) is None
    assert counter.value(page_id="vk:-1", topic="roads") == 3
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    assert [(f.name, f.type, f.documentation) for f in families] == [
        ("dozor_test", "counter", "Test counts.")]
    assert len(families[0].samples) == 2


def test_a_dict_counter_refuses_wrong_labels_and_negative_increments():
    counter = DictCounter("dozor_test", "Test.", ["page_id"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="expected"):
        counter.labels(page="vk:-1")
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels(page_id="vk:-1").inc(-1)
    with pytest.raises(ValueError, match="Duplicated"):  # one name per registry, as for a Counter
        registry = CollectorRegistry()
        DictCounter("dozor_test", "Test.", ["page_id"], registry=registry)
        Counter("dozor_test", "Test.", ["page_id"], registry=registry)


def test_a_scrape_while_series_are_added_sees_each_series_whole():
    registry = CollectorRegistry()
    counter = DictCounter("dozor_test", "Test.", ["page_id", "topic"], registry=registry)
    stop, errors = threading.Event(), []

    def scrape():
        while not stop.is_set():
            try:
                generate_latest(registry)
            except Exception as exc:  # a dict changing size under the scrape
                errors.append(exc)
                return

    thread = threading.Thread(target=scrape)
    thread.start()
    try:
        for page in range(3000):
            for topic in range(4):
                counter.labels(page_id=f"vk:-{page}", topic=str(topic)).inc()
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert sum(counter._values.values()) == 12000


def test_a_series_takes_a_fraction_of_a_counter_childs_memory():
    """The reason it exists: with 1,000 pages × 10 topics a prometheus_client child costs ~570
    bytes a series, an entry here ~110 (the label strings shared, as the pages' ids are)."""
    pages = [f"vk:-{3_000_000 + j}" for j in range(1000)]
    topics = [f"topic_{k}" for k in range(10)]

    def bytes_per_series(counter) -> float:
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for page in pages:
                for topic in topics:
                    counter.labels(page_id=page, topic=topic).inc()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        return sum(d.size_diff for d in after.compare_to(before, "filename")) / 10_000

    plain = bytes_per_series(Counter("a", "a", ["page_id", "topic"], registry=CollectorRegistry()))
    compact = bytes_per_series(DictCounter("b", "b", ["page_id", "topic"],
                                           registry=CollectorRegistry()))
    assert compact < plain / 3, (compact, plain)


def test_the_worker_pre_initialises_a_pages_series_at_zero():
    registry = CollectorRegistry()
    metrics = DozorMetrics(registry)
    metrics.init_page("vk:-1", ["negative", "question"])
    assert registry.get_sample_value("dozor_comments_total", {"page_id": "vk:-1"}) == 0
    assert registry.get_sample_value(
        "dozor_comments_classified_total", {"page_id": "vk:-1", "label": "question"}) == 0
    assert registry.get_sample_value(
        "dozor_flags_total", {"page_id": "vk:-1", "reason": "unanswered_question"}) == 0
