"""Contract D: the moderation metrics, computed from the store and from the actions."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from services.moderation.metrics import ModerationMetrics, QueueCollector
from tests.support.observe import metric_samples

from tests.support.moderation import START


def test_queue_gauges_histograms_and_counters(store, make_user, make_flag):
    registry = CollectorRegistry()
    metrics = ModerationMetrics(registry)
    ticks = iter(range(1000))
    collector = QueueCollector(store, cache_seconds=0.5, clock=lambda: next(ticks))
    registry.register(collector)
    store.on_action = metrics.on_action

    flags = [make_flag("toxic", flagged_at=START - 600), make_flag("toxic", flagged_at=START - 60),
             make_flag("unanswered_question", municipality="Ухта", flagged_at=START - 300)]
    counts = store.ingest(flags, [], [])
    metrics.on_batch(counts)
    user = make_user("operator")
    store.clock.advance(100)
    store.take(user, flags[0]["flag_id"])  # 700 s after its flag
    store.clock.advance(200)
    store.resolve(user, flags[0]["flag_id"], "hidden")  # 900 s after its flag
    store.resolve(user, flags[1]["flag_id"], "dismissed")  # from new: first action and resolution
    store.report_model_error(user, flags[2]["flag_id"], {"question": 1})

    text = generate_latest(registry).decode()
    items = metric_samples(text, "dozor_moderation_items")
    assert items == {
        (("municipality", "Сыктывкар"), ("reason", "toxic"), ("status", "resolved")): 2.0,
        (("municipality", "Ухта"), ("reason", "unanswered_question"), ("status", "new")): 1.0,
    }
    assert metric_samples(text, "dozor_moderation_oldest_new_item_timestamp_seconds") == {(): START - 300}
    assert metric_samples(text, "dozor_moderation_flags_ingested_total") == {(): 3.0}
    actions = metric_samples(text, "dozor_moderation_actions_total")
    assert actions[(("action", "take"),)] == 1 and actions[(("action", "resolve"),)] == 2
    assert actions[(("action", "model_error"),)] == 1 and actions[(("action", "release"),)] == 0
    first = metric_samples(text, "dozor_moderation_first_action_seconds_sum")
    assert first == {(): 700.0 + 360.0}
    assert metric_samples(text, "dozor_moderation_resolution_seconds_sum") == {(): 900.0 + 360.0}
    assert metric_samples(text, "dozor_moderation_resolution_seconds_count") == {(): 2.0}

    # the page answers the question: the gauge follows, an update counted
    counts = store.ingest([], [{"flag_id": flags[2]["flag_id"], "kind": "answered", "page_id": "vk:-1",
                                "item_id": flags[2]["item_id"], "at": START, "update_id": "u1",
                                "link": "https://vk.com/a"}], [])
    metrics.on_batch(counts)
    text = generate_latest(registry).decode()
    assert metric_samples(text, "dozor_moderation_oldest_new_item_timestamp_seconds") == {(): 0.0}
    assert metric_samples(text, "dozor_moderation_updates_applied_total")[(("kind", "answered"),)] == 1


def test_queue_gauges_are_cached_between_scrapes(store, make_flag):
    now = [0.0]
    collector = QueueCollector(store, cache_seconds=5, clock=lambda: now[0])
    registry = CollectorRegistry()
    registry.register(collector)
    store.upsert_flags([make_flag()])
    assert sum(metric_samples(generate_latest(registry).decode(), "dozor_moderation_items").values()) == 1
    store.upsert_flags([make_flag()])
    now[0] = 4.9
    assert sum(metric_samples(generate_latest(registry).decode(), "dozor_moderation_items").values()) == 1
    now[0] = 5.0
    assert sum(metric_samples(generate_latest(registry).decode(), "dozor_moderation_items").values()) == 2
